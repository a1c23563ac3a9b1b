// SPDX-License-Identifier: GPL-2.0-or-later
// apt-shim.cc: libapt-pkg for C: the configuration tree flattened, dpkg's installed versions, a package's
// version and origin. Exceptions and apt's error stack stop here.
#include <apt-pkg/cachefile.h>
#include <apt-pkg/configuration.h>
#include <apt-pkg/error.h>
#include <apt-pkg/fileutl.h>
#include <apt-pkg/init.h>
#include <apt-pkg/pkgcache.h>
#include <apt-pkg/pkgsystem.h>
#include <apt-pkg/tagfile.h>
#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "apt-shim.h"

namespace {

std::string pop_errors() {
        std::string all;
        while (!_error->empty()) {
                std::string msg;
                _error->PopMessage(msg);
                if (!all.empty())
                        all += "; ";
                all += msg;
        }
        return all;
}

void collect(const Configuration::Item *item, const Configuration::Item *stop,
             std::vector<std::pair<std::string, std::string>> &out) {
        for (; item; item = item->Next) {
                if (item->Child)
                        collect(item->Child, stop, out);
                else
                        out.emplace_back(item->FullTag(stop), item->Value);
        }
}

int entries_from(const std::vector<std::pair<std::string, std::string>> &pairs, struct apt_shim_entry **ret_entries,
                 size_t *ret_n) {
        auto *entries = static_cast<struct apt_shim_entry *>(calloc(pairs.size() + 1, sizeof(apt_shim_entry)));
        if (!entries)
                return -ENOMEM;
        for (size_t i = 0; i < pairs.size(); i++) {
                entries[i].key = strdup(pairs[i].first.c_str());
                entries[i].value = strdup(pairs[i].second.c_str());
                if (!entries[i].key || !entries[i].value) {
                        apt_shim_entries_free(entries, i + 1);
                        return -ENOMEM;
                }
        }
        *ret_entries = entries;
        *ret_n = pairs.size();
        return 0;
}

}  // namespace

extern "C" int apt_shim_config_read(const char *file, const char *scope, struct apt_shim_entry **ret_entries,
                                    size_t *ret_n, char **ret_error) {
        *ret_entries = nullptr;
        *ret_n = 0;
        if (ret_error)
                *ret_error = nullptr;

        try {
                /* Never apt's global _config: a second read (the watcher's SIGHUP) would add to the first, and a
                 * key since removed would stay. */
                Configuration cnf;
                bool ok = file ? ReadConfigFile(cnf, file) : pkgInitConfig(cnf);
                if (!ok || _error->PendingError()) {
                        std::string msg = pop_errors();
                        if (ret_error)
                                *ret_error = strdup(msg.empty() ? "unreadable configuration" : msg.c_str());
                        return -EINVAL;
                }
                pop_errors(); /* warnings: apt prints its own */

                std::vector<std::pair<std::string, std::string>> leaves;
                const Configuration::Item *top = cnf.Tree(scope);
                if (top && top->Child)
                        collect(top->Child, top, leaves);

                return entries_from(leaves, ret_entries, ret_n);
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        } catch (...) {
                return -EIO;
        }
}

extern "C" void apt_shim_entries_free(struct apt_shim_entry *entries, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(entries[i].key);
                free(entries[i].value);
        }
        free(entries);
}

namespace {

/* The cache needs apt's configuration and system; libapt-pkg keeps both in its own globals, set up once. */
bool init_system() {
        return _system || (pkgInitConfig(*_config) && pkgInitSystem(*_config, _system));
}

}  // namespace

namespace {

/* Calls fn(name, version) for each package a dpkg status-format file lists as present. */
template <typename Fn> bool scan_status(const std::string &path, Fn fn) {
        FileFd fd;
        if (!fd.Open(path, FileFd::ReadOnly))
                return false;
        pkgTagFile tags(&fd);
        pkgTagSection section;
        std::string native = _config->Find("APT::Architecture");
        while (tags.Step(section)) {
                std::string name = section.FindS("Package"), version = section.FindS("Version");
                std::string status = section.FindS("Status"), arch = section.FindS("Architecture");
                /* "install ok installed", "… unpacked", "… half-configured": present; the last word says so */
                std::string state = status.substr(status.rfind(' ') + 1);
                bool present = !version.empty() && state != "not-installed" && state != "config-files";
                if (name.empty())
                        continue;
                if (!arch.empty() && arch != "all" && !native.empty() && arch != native)
                        name += ":" + arch;
                fn(name, present ? version : std::string());
        }
        return true;
}

std::string status_path() {
        return _config->FindFile("Dir::State::status");
}

/* dpkg's own view of a package's version: its status file, then the journal of changes dpkg has not folded into
 * it yet (updates/NNNN, in order). A dpkg trigger runs mid-run: the journal has the new version, while the status
 * file, and apt's cache built from it, still say the old one. */
std::string dpkg_version(const char *name) {
        std::string path = status_path(), version;
        auto take = [&](const std::string &n, const std::string &v) {
                if (n == name)
                        version = v;
        };
        scan_status(path, take);
        std::filesystem::path updates = std::filesystem::path(path).parent_path() / "updates";
        std::vector<std::string> journal;
        std::error_code ec;
        for (const auto &entry : std::filesystem::directory_iterator(updates, ec)) {
                std::string file = entry.path().filename();
                if (!file.empty() && file.find_first_not_of("0123456789") == std::string::npos)
                        journal.push_back(entry.path());
        }
        std::sort(journal.begin(), journal.end());
        for (const auto &file : journal)
                scan_status(file, take);
        return version;
}

/* "Tailscale stable": Origin and Suite of the archive apt knows this version from; "" when none (dpkg -i). */
std::string archive_of(const char *name, const std::string &version) {
        pkgCacheFile cachefile;
        pkgCache *cache = cachefile.GetPkgCache(); /* builds in memory if need be; takes no lock */
        if (!cache)
                return "";
        pkgCache::PkgIterator pkg = cache->FindPkg(name);
        if (pkg.end())
                return "";
        for (pkgCache::VerIterator ver = pkg.VersionList(); !ver.end(); ++ver) {
                if (version != ver.VerStr())
                        continue;
                for (pkgCache::VerFileIterator vf = ver.FileList(); !vf.end(); ++vf) {
                        pkgCache::PkgFileIterator file = vf.File();
                        if (file.Flagged(pkgCache::Flag::NotSource) || !file.Origin())
                                continue; /* dpkg's status file: installed, but from nowhere */
                        std::string origin = file.Origin();
                        if (file.Archive() && *file.Archive())
                                origin += std::string(" ") + file.Archive();
                        return origin;
                }
        }
        return "";
}

}  // namespace

extern "C" int apt_shim_dpkg_versions(const char *status_file, struct apt_shim_entry **ret_entries, size_t *ret_n) {
        *ret_entries = nullptr;
        *ret_n = 0;
        try {
                if (!status_file && !init_system())
                        return pop_errors(), -EIO;
                std::vector<std::pair<std::string, std::string>> versions;
                bool ok = scan_status(status_file ? status_file : status_path(),
                                      [&](const std::string &n, const std::string &v) {
                                              if (!v.empty())
                                                      versions.emplace_back(n, v);
                                      });
                pop_errors();
                if (!ok)
                        return -ENOENT;
                return entries_from(versions, ret_entries, ret_n);
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        } catch (...) {
                return -EIO;
        }
}

extern "C" int apt_shim_package_installed(const char *name, char **ret_version, char **ret_origin) {
        *ret_version = nullptr;
        *ret_origin = nullptr;
        try {
                if (!init_system())
                        return pop_errors(), -EIO;
                std::string version = dpkg_version(name);
                if (version.empty()) {
                        pop_errors();
                        return -ENOENT;
                }

                std::string origin = archive_of(name, version);
                pop_errors();
                *ret_version = strdup(version.c_str());
                if (!*ret_version)
                        return -ENOMEM;
                if (!origin.empty() && !(*ret_origin = strdup(origin.c_str()))) {
                        free(*ret_version);
                        *ret_version = nullptr;
                        return -ENOMEM;
                }
                return 0;
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        } catch (...) {
                return -EIO;
        }
}

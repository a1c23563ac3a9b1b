// SPDX-License-Identifier: GPL-2.0-or-later
// apt-shim.cc: flattens libapt-pkg's configuration tree for C. Exceptions and apt's error stack stop here.
#include <apt-pkg/configuration.h>
#include <apt-pkg/error.h>
#include <apt-pkg/init.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
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

}  // namespace

extern "C" int apt_shim_config_read(const char *file, const char *scope, struct apt_shim_entry **ret_entries,
                                    size_t *ret_n, char **ret_error) {
        *ret_entries = nullptr;
        *ret_n = 0;
        if (ret_error)
                *ret_error = nullptr;

        try {
                Configuration local;
                Configuration &cnf = file ? local : *_config;
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

                auto *entries = static_cast<struct apt_shim_entry *>(calloc(leaves.size() + 1, sizeof(apt_shim_entry)));
                if (!entries)
                        return -ENOMEM;
                for (size_t i = 0; i < leaves.size(); i++) {
                        entries[i].key = strdup(leaves[i].first.c_str());
                        entries[i].value = strdup(leaves[i].second.c_str());
                        if (!entries[i].key || !entries[i].value) {
                                apt_shim_entries_free(entries, i + 1);
                                return -ENOMEM;
                        }
                }
                *ret_entries = entries;
                *ret_n = leaves.size();
                return 0;
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

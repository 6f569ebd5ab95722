#include "tests/support/temp_dir.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace edge::test {

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = (base != nullptr && *base != '\0') ? base : "/tmp";
    pattern += "/edge-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) {
        throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    path_ = buffer.data();
}

TempDir::~TempDir() {
    // EDGE_KEEP_TEMP=1 keeps the files (logs, LMDB, configs) to look at after a failure.
    if (const char* keep = std::getenv("EDGE_KEEP_TEMP"); keep != nullptr && *keep == '1') return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

}  // namespace edge::test

#pragma once
// TempDir: a fresh, uniquely named directory under $TMPDIR (or /tmp), removed recursively when
// the object is destroyed.
#include <filesystem>
#include <string_view>

namespace edge::test {

class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

}  // namespace edge::test

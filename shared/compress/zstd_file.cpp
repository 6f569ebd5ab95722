#include "shared/compress/zstd_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <zstd.h>

#include "security/crypto.hpp"
#include "shared/core/fs.hpp"

namespace edge::compress {

namespace {

constexpr unsigned char kMagic[4] = {0x28, 0xb5, 0x2f, 0xfd};

struct DctxDeleter {
    void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

using Fd = fs::UniqueFd;

std::unexpected<Error> ioError(const std::string& what, const std::filesystem::path& path) {
    return fail(SharedErrc::kIo, fmt::format("{} '{}': {}", what, path.string(), std::strerror(errno)));
}

Status writeAll(int fd, const char* data, std::size_t size, const std::filesystem::path& path) {
    while (size > 0) {
        const auto n = ::write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return ioError("write", path);
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return {};
}

/// Streams the decompressed bytes of src to sink (at most max_size of them); the hex digest.
Result<ContentInfo> decompress(const std::filesystem::path& src, std::uint64_t max_size,
                               const std::function<Status(const char*, std::size_t)>& sink) {
    const Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return ioError("open", src);
    std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx(ZSTD_createDCtx());
    if (!dctx) return fail(SharedErrc::kIo, "zstd: out of memory");
    std::vector<char> in_buf(ZSTD_DStreamInSize());
    std::vector<char> out_buf(ZSTD_DStreamOutSize());
    security::Sha256Hasher hasher;
    std::uint64_t total = 0;
    std::size_t last_ret = 0;
    bool any_input = false;
    while (true) {
        const auto n = ::read(in.get(), in_buf.data(), in_buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return ioError("read", src);
        }
        if (n == 0) break;
        if (!any_input && (n < 4 || std::memcmp(in_buf.data(), kMagic, 4) != 0)) {
            return fail(SharedErrc::kParse, fmt::format("'{}' is not a zstd file", src.string()));
        }
        any_input = true;
        ZSTD_inBuffer input{in_buf.data(), static_cast<std::size_t>(n), 0};
        while (input.pos < input.size) {
            ZSTD_outBuffer output{out_buf.data(), out_buf.size(), 0};
            last_ret = ZSTD_decompressStream(dctx.get(), &output, &input);
            if (ZSTD_isError(last_ret)) {
                return fail(SharedErrc::kParse,
                            fmt::format("zstd '{}': {}", src.string(), ZSTD_getErrorName(last_ret)));
            }
            if (output.pos > max_size - total) {
                return fail(SharedErrc::kInvalidArgument,
                            fmt::format("zstd '{}': decompresses to more than the declared {} bytes", src.string(),
                                        max_size));
            }
            total += output.pos;
            hasher.update(std::string_view(out_buf.data(), output.pos));
            if (auto st = sink(out_buf.data(), output.pos); !st) return fail(st.error());
        }
    }
    if (!any_input) return fail(SharedErrc::kParse, fmt::format("'{}' is empty, not a zstd file", src.string()));
    if (last_ret != 0) {
        return fail(SharedErrc::kParse, fmt::format("zstd '{}': truncated (the last frame does not end)", src.string()));
    }
    return ContentInfo{hasher.finishHex(), total};
}

}  // namespace

bool isZstdFile(const std::filesystem::path& path) {
    const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    unsigned char head[4];
    return fd.get() >= 0 && ::read(fd.get(), head, 4) == 4 && std::memcmp(head, kMagic, 4) == 0;
}

Result<ContentInfo> describeZstd(const std::filesystem::path& src, std::uint64_t max_size) {
    return decompress(src, max_size, [](const char*, std::size_t) -> Status { return {}; });
}

Status decompressZstd(const std::filesystem::path& src, const std::filesystem::path& dest,
                      std::string_view expected_sha256, std::uint64_t expected_size) {
    const auto tmp = std::filesystem::path(dest.string() + ".tmp");
    auto cleanup = [&](Error e) -> Status {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        return fail(std::move(e));
    };
    const Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (out.get() < 0) return ioError("create", tmp);
    auto info = decompress(src, expected_size,
                           [&](const char* data, std::size_t n) { return writeAll(out.get(), data, n, tmp); });
    if (!info) return cleanup(std::move(info.error()));
    if (info->size != expected_size) {
        return cleanup(Error(make_error_code(SharedErrc::kParse),
                             fmt::format("zstd '{}': decompressed {} bytes, the bundle declares {}", src.string(),
                                         info->size, expected_size)));
    }
    if (info->sha256 != expected_sha256) {
        return cleanup(Error(make_error_code(SharedErrc::kInvalidArgument),
                             fmt::format("zstd '{}': the decompressed bytes have sha256 {}, expected {}",
                                         src.string(), info->sha256, expected_sha256)));
    }
    if (::fsync(out.get()) != 0) return cleanup(ioError("fsync", tmp).error());
    if (::rename(tmp.c_str(), dest.c_str()) != 0) return cleanup(ioError("rename to", dest).error());
    const Fd dir(::open(dest.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0 || ::fsync(dir.get()) != 0) return ioError("fsync directory", dest.parent_path());
    return {};
}

}  // namespace edge::compress

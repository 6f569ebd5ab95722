#include "shared/http/beast/tls_stream.hpp"

#include <new>

namespace edge::http::tls {

namespace {

RecordBuffers& buffersOf(BIO* bio) { return *static_cast<RecordBuffers*>(BIO_get_data(bio)); }

int writeRecords(BIO* bio, const char* data, std::size_t length, std::size_t* written) {
    BIO_clear_retry_flags(bio);
    try {
        auto& out = buffersOf(bio).out;
        out.insert(out.end(), data, data + length);
    } catch (const std::bad_alloc&) {
        *written = 0;
        return 0;  // a plain failure: the TLS operation fails instead of being retried
    }
    *written = length;
    return 1;
}

int readRecords(BIO* bio, char* data, std::size_t length, std::size_t* read) {
    BIO_clear_retry_flags(bio);
    auto& in = buffersOf(bio);
    const std::size_t available = in.in_end - in.in_pos;
    if (available == 0) {
        BIO_set_retry_read(bio);
        *read = 0;
        return 0;
    }
    const std::size_t n = std::min(length, available);
    std::memcpy(data, in.in.get() + in.in_pos, n);
    in.in_pos += n;
    *read = n;
    return 1;
}

long control(BIO* bio, int command, long, void*) {
    switch (command) {
        case BIO_CTRL_FLUSH:
            return 1;
        case BIO_CTRL_PENDING:
            return static_cast<long>(buffersOf(bio).in_end - buffersOf(bio).in_pos);
        case BIO_CTRL_WPENDING:
            return static_cast<long>(buffersOf(bio).out.size());
        default:
            return 0;
    }
}

int create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

/// Built once; OpenSSL keeps it for the life of the process.
BIO_METHOD* method() {
    static BIO_METHOD* const kMethod = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edge record buffers");
        if (m == nullptr) return m;
        BIO_meth_set_write_ex(m, writeRecords);
        BIO_meth_set_read_ex(m, readRecords);
        BIO_meth_set_ctrl(m, control);
        BIO_meth_set_create(m, create);
        return m;
    }();
    return kMethod;
}

}  // namespace

BIO* newBufferBio(RecordBuffers* buffers) {
    BIO_METHOD* m = method();
    if (m == nullptr) return nullptr;
    BIO* bio = BIO_new(m);
    if (bio != nullptr) BIO_set_data(bio, buffers);
    return bio;
}

}  // namespace edge::http::tls

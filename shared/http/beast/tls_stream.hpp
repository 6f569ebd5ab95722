#pragma once
// A TLS stream for Asio that moves many TLS records per socket call. Adapter-internal: only the
// .cpp files of shared/http/beast include it.
//
// boost::asio::ssl::stream passes every record through a 17 KiB BIO pair: one socket call, one
// extra copy and one completion per 16 KiB record, which costs more CPU than the cipher on a
// large download. Here OpenSSL reads records from, and writes them into, plain buffers (a BIO of
// our own): a write seals up to kMaxWrite bytes into one buffer sent with one async_write; a
// read takes what fits the receive buffer (kReadChunk, grown up to kMaxReadChunk for a caller
// that reads into buffers that large) from the socket at once and decrypts as many records as
// the caller's buffer holds. The interface is the part of ssl::stream that Beast and our adapters
// use (async_handshake, async_read_some, async_write_some, async_shutdown, native_handle,
// next_layer), with the same errors: a peer's close_notify is asio::error::eof, a connection
// that ends without one is ssl::error::stream_truncated, a TLS failure is an error of
// asio::error::get_ssl_category() carrying OpenSSL's error code.
//
// Memory per connection: kReadChunk for received bytes (from the first read on; up to
// kMaxReadChunk once a read asked for that many bytes: a large download), and room for the
// sealed records of one write (about kMaxWrite, from the first large write on).
//
// One operation at a time per stream, unlike asio's (which allows a read beside a write): the
// server and client here never overlap them.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace edge::http::tls {

/// The bytes between OpenSSL and the socket: sealed records OpenSSL wrote wait in out until they
/// are sent; bytes read from the socket wait in in[in_pos, in_end) until OpenSSL reads them.
struct RecordBuffers {
    std::unique_ptr<char[]> in;  // in_size bytes, allocated at the first read
    std::size_t in_size = 0;
    std::size_t in_pos = 0;
    std::size_t in_end = 0;
    std::vector<char> out;
};

/// A BIO over buffers: writes append to out; reads take from in and, when it is empty, ask to
/// be retried (SSL_ERROR_WANT_READ). Never blocks. nullptr when OpenSSL is out of memory.
[[nodiscard]] BIO* newBufferBio(RecordBuffers* buffers);

template <class NextLayer>
class Stream {
public:
    using next_layer_type = NextLayer;
    using executor_type = typename NextLayer::executor_type;

    /// The receive buffer's first size: what one socket read can take.
    static constexpr std::size_t kReadChunk = 128u << 10;
    /// Its largest: the buffer grows (never shrinks) to the size of the largest read asked for,
    /// up to this. Reading a large body 1 MiB per socket call instead of 128 KiB took about 15% off
    /// the receiving side's CPU (install_bench, the stream path).
    static constexpr std::size_t kMaxReadChunk = 1u << 20;
    /// Plaintext sealed per async_write_some (the rest of a larger buffer is left to the next).
    static constexpr std::size_t kMaxWrite = 256u << 10;

    /// next_arg constructs the next layer (an io_context, or a connected stream); the SSL object
    /// takes its settings (verification, certificates, protocol versions) from context.
    template <class Arg>
    Stream(Arg&& next_arg, boost::asio::ssl::context& context)
        : next_(std::forward<Arg>(next_arg)),
          buffers_(std::make_unique<RecordBuffers>()),
          ssl_(::SSL_new(context.native_handle())) {
        if (!ssl_) throw boost::system::system_error(lastError(), "SSL_new");
        BIO* bio = newBufferBio(buffers_.get());
        if (bio == nullptr) throw boost::system::system_error(lastError(), "BIO_new");
        ::SSL_set_bio(ssl_.get(), bio, bio);  // one reference, owned by the SSL object
        ::SSL_set_mode(ssl_.get(), SSL_MODE_RELEASE_BUFFERS);  // idle connections hold less
    }

    executor_type get_executor() noexcept { return next_.get_executor(); }
    NextLayer& next_layer() noexcept { return next_; }
    const NextLayer& next_layer() const noexcept { return next_; }
    SSL* native_handle() noexcept { return ssl_.get(); }
    /// Bytes held for received records (0 before the first read).
    std::size_t receiveBufferSize() const noexcept { return buffers_->in_size; }

    template <class Token>
    auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
        if (type == boost::asio::ssl::stream_base::client) {
            ::SSL_set_connect_state(ssl_.get());
        } else {
            ::SSL_set_accept_state(ssl_.get());
        }
        return boost::asio::async_compose<Token, void(boost::system::error_code)>(
            IoOp<Handshake, false>{this, {}}, token, next_);
    }

    /// Sends the close_notify, then waits for the peer's (asio's ssl::stream does the same).
    template <class Token>
    auto async_shutdown(Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code)>(
            IoOp<Shutdown, false>{this, {}}, token, next_);
    }

    /// Completes with at least one byte (or an error): as many as the buffers hold of what has
    /// arrived, decrypting more records while they are already here.
    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            IoOp<Read<MutableBuffers>, true>{this, Read<MutableBuffers>{buffers}}, token, next_);
    }

    /// Seals up to kMaxWrite bytes of buffers into records and sends them in one socket write.
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            IoOp<Write<ConstBuffers>, true>{this, Write<ConstBuffers>{buffers}}, token, next_);
    }

private:
    static boost::system::error_code lastError() {
        return {static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()};
    }

    /// Sealed records of one write, with room for each record's header and tag.
    static constexpr std::size_t kOutReserve = kMaxWrite + (kMaxWrite / 16384 + 1) * 64;

    // Each step is called with the bytes it has moved so far and returns OpenSSL's result: > 0
    // once done, <= 0 with the reason in SSL_get_error().
    // A step may say readAhead(): the smallest receive buffer it wants when it waits for the
    // socket (kReadChunk otherwise).
    struct Handshake {
        int operator()(SSL* ssl, std::size_t&, RecordBuffers&) { return ::SSL_do_handshake(ssl); }
    };
    struct Shutdown {
        int operator()(SSL* ssl, std::size_t&, RecordBuffers&) {
            const int r = ::SSL_shutdown(ssl);  // 0: ours is sent; then wait for the peer's
            return r == 0 ? ::SSL_shutdown(ssl) : r;
        }
    };
    /// Calls use(buffer) for each buffer of the sequence from byte `from` on (what comes before
    /// is cut off), while use returns true.
    template <class Buffer, class Buffers, class Use>
    static void eachFrom(const Buffers& buffers, std::size_t from, Use&& use) {
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers); ++it) {
            Buffer b = *it;
            if (from >= b.size()) {
                from -= b.size();
                continue;
            }
            b += from;
            from = 0;
            if (!use(b)) return;
        }
    }
    template <class Buffers>
    struct Read {
        Buffers buffers;
        int operator()(SSL* ssl, std::size_t& done, RecordBuffers&) {
            if (boost::asio::buffer_size(buffers) == 0) return 1;
            int r = 1;
            eachFrom<boost::asio::mutable_buffer>(buffers, done, [&](boost::asio::mutable_buffer b) {
                while (b.size() > 0) {
                    std::size_t n = 0;
                    r = ::SSL_read_ex(ssl, b.data(), b.size(), &n);
                    if (r <= 0) return false;
                    b += n;
                    done += n;
                }
                return true;
            });
            return r;
        }
        std::size_t readAhead() const {
            return std::clamp(boost::asio::buffer_size(buffers), kReadChunk, kMaxReadChunk);
        }
    };
    template <class Buffers>
    struct Write {
        Buffers buffers;
        int operator()(SSL* ssl, std::size_t& done, RecordBuffers& io) {
            // Room for one batch and its record overheads, reserved once: no regrowth by doubling.
            if (io.out.capacity() < kOutReserve && boost::asio::buffer_size(buffers) > kOutReserve / 2) {
                io.out.reserve(kOutReserve);
            }
            int r = 1;
            eachFrom<boost::asio::const_buffer>(buffers, done, [&](boost::asio::const_buffer b) {
                if (done >= kMaxWrite) return false;
                const std::size_t want = std::min(b.size(), kMaxWrite - done);
                std::size_t n = 0;
                r = ::SSL_write_ex(ssl, b.data(), want, &n);
                if (r <= 0) return false;
                done += n;
                return n == want;
            });
            return r;
        }
    };

    /// Runs a step: sends what it sealed, reads from the socket while it wants input, completes
    /// once it is done or failed.
    template <class Step, bool kSized>
    struct IoOp {
        Stream* stream;
        Step step;
        enum class Waiting { kNothing, kSend, kReceive, kPosted } waiting = Waiting::kNothing;
        bool waited = false;  // an operation on the socket ran: completing now is not inline
        std::size_t done = 0;
        int result = 0;
        int reason = SSL_ERROR_NONE;
        boost::system::error_code failure;  // taken when the step failed, before anything else runs

        template <class Self>
        void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
            RecordBuffers& io = *stream->buffers_;
            switch (waiting) {
                case Waiting::kNothing:
                    break;
                case Waiting::kPosted:
                    return finish(self, failure);
                case Waiting::kSend:
                    io.out.clear();
                    if (ec) return finish(self, failure ? failure : ec);
                    return decide(self);
                case Waiting::kReceive:
                    if (ec == boost::asio::error::eof) {
                        return finish(self, boost::asio::ssl::error::stream_truncated);
                    }
                    if (ec) return finish(self, ec);
                    io.in_end += n;
                    break;
            }
            if (waiting == Waiting::kNothing && stream->deferred_) {
                // A failure that came after the bytes the last operation handed over.
                return finish(self, std::exchange(stream->deferred_, {}));
            }
            ::ERR_clear_error();
            result = step(stream->ssl_.get(), done, io);
            reason = result > 0 ? SSL_ERROR_NONE : ::SSL_get_error(stream->ssl_.get(), result);
            if (reason == SSL_ERROR_SSL || reason == SSL_ERROR_SYSCALL) {
                failure = lastError();
                if (!failure) failure = boost::asio::ssl::error::stream_truncated;
            }
            ::ERR_clear_error();  // the loop thread's other users must not see this connection's
            if (result <= 0 && done > 0) {
                // Bytes moved before the step stopped: they are handed over now; a failure is
                // reported by the next operation, as asio's record-at-a-time stream would.
                if (failure) stream->deferred_ = failure;
                result = 1;
            }
            if (!io.out.empty()) {  // records, alerts, a close_notify: sent before anything else
                waiting = Waiting::kSend;
                waited = true;
                auto& out = io.out;
                return boost::asio::async_write(stream->next_, boost::asio::buffer(out),
                                                std::move(self));
            }
            decide(self);
        }

    private:
        template <class Self>
        void decide(Self& self) {
            if (result > 0) return finish(self, {});
            switch (reason) {
                case SSL_ERROR_WANT_READ: {
                    RecordBuffers& io = *stream->buffers_;
                    // OpenSSL normally takes all; what it left moves to the front of the buffer
                    // (into a larger one when the step wants more room).
                    const std::size_t left = io.in_end - io.in_pos;
                    std::size_t size = kReadChunk;
                    if constexpr (requires { step.readAhead(); }) size = step.readAhead();
                    if (size > io.in_size) {
                        auto larger = std::make_unique_for_overwrite<char[]>(size);
                        if (left > 0) std::memcpy(larger.get(), io.in.get() + io.in_pos, left);
                        io.in = std::move(larger);
                        io.in_size = size;
                    } else if (left > 0 && io.in_pos > 0) {
                        std::memmove(io.in.get(), io.in.get() + io.in_pos, left);
                    }
                    io.in_pos = 0;
                    io.in_end = left;
                    waiting = Waiting::kReceive;
                    waited = true;
                    auto room = boost::asio::buffer(io.in.get() + io.in_end, io.in_size - io.in_end);
                    return stream->next_.async_read_some(room, std::move(self));
                }
                case SSL_ERROR_ZERO_RETURN:
                    return finish(self, boost::asio::error::eof);
                default:
                    return finish(self, failure ? failure : boost::asio::ssl::error::stream_truncated);
            }
        }

        template <class Self>
        void finish(Self& self, boost::system::error_code ec) {
            if (!waited) {  // done within the initiating call: the handler must not run inside it
                waited = true;
                failure = ec;
                waiting = Waiting::kPosted;
                return boost::asio::post(std::move(self));
            }
            if constexpr (kSized) {
                self.complete(ec, done);
            } else {
                self.complete(ec);
            }
        }
    };

    struct FreeSsl {
        void operator()(SSL* ssl) const { ::SSL_free(ssl); }
    };

    NextLayer next_;
    std::unique_ptr<RecordBuffers> buffers_;  // the BIO points here: stable when the stream moves
    std::unique_ptr<SSL, FreeSsl> ssl_;
    boost::system::error_code deferred_;  // for the next operation (see IoOp)
};

}  // namespace edge::http::tls

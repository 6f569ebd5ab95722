#pragma once
// HashWorker: SHA-256 on a thread of its own, over chunks submitted in order, so that hashing
// (about one core's worth of work at disk speed) overlaps reading and writing on the caller's
// thread. Used by the artifact download and the slot writer (issue 6).
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "security/crypto.hpp"

namespace edge::security {

class HashWorker {
public:
    HashWorker();
    /// Waits for the chunks in hand and joins.
    ~HashWorker();
    HashWorker(const HashWorker&) = delete;
    HashWorker& operator=(const HashWorker&) = delete;

    /// Queues a chunk. Its bytes must stay unchanged until hashed() counts it (waitHashed,
    /// waitIdle or finishHex).
    void submit(std::string_view chunk);
    /// Blocks until at least count chunks (since construction) are hashed.
    void waitHashed(std::uint64_t count);
    /// Blocks until every submitted chunk is hashed.
    void waitIdle();
    /// Waits for every submitted chunk, then the hex digest of all bytes since the last
    /// finishHex() or reset(); the hash starts over.
    [[nodiscard]] std::string finishHex();
    /// Waits for every submitted chunk and starts the hash over.
    void reset();

private:
    void run();

    std::mutex mutex_;
    std::condition_variable wake_worker_;
    std::condition_variable wake_caller_;
    std::deque<std::string_view> queue_;
    bool busy_ = false;
    bool stopping_ = false;
    std::uint64_t submitted_ = 0;
    std::uint64_t hashed_ = 0;
    Sha256Hasher hasher_;  // the worker's while it hashes; the caller's once idle
    std::thread thread_;   // last: starts once everything it uses exists
};

}  // namespace edge::security

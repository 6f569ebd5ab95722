#include "security/hash_worker.hpp"

#include <pthread.h>

namespace edge::security {

HashWorker::HashWorker() : thread_([this] { run(); }) {}

HashWorker::~HashWorker() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_worker_.notify_one();
    thread_.join();
}

void HashWorker::submit(std::string_view chunk) {
    {
        const std::lock_guard lock(mutex_);
        queue_.push_back(chunk);
        ++submitted_;
    }
    wake_worker_.notify_one();
}

void HashWorker::waitHashed(std::uint64_t count) {
    std::unique_lock lock(mutex_);
    wake_caller_.wait(lock, [&] { return hashed_ >= count; });
}

void HashWorker::waitIdle() {
    std::unique_lock lock(mutex_);
    wake_caller_.wait(lock, [&] { return hashed_ == submitted_; });
}

std::string HashWorker::finishHex() {
    waitIdle();
    return hasher_.finishHex();
}

void HashWorker::reset() {
    waitIdle();
    hasher_ = Sha256Hasher();
}

void HashWorker::run() {
    ::pthread_setname_np(::pthread_self(), "edge-hash");  // seen in top -H, perf, gdb
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_worker_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        const std::string_view chunk = queue_.front();
        busy_ = true;
        lock.unlock();
        hasher_.update(chunk);
        lock.lock();
        queue_.pop_front();
        busy_ = false;
        ++hashed_;
        wake_caller_.notify_all();
    }
}

}  // namespace edge::security

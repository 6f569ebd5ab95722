#pragma once
// LmdbStore: the Store on an LMDB environment (one directory holding data.mdb and lock.mdb).
//
// - Every write commits durably (no MDB_NOSYNC); a process that dies inside write() leaves the
//   environment as it was before that write.
// - The environment is opened with MDB_NOTLS, so read() may run on any thread, concurrently with
//   one writer. One process may write while others open the same directory read-only.
// - Any failed operation inside write() makes the whole write fail (nothing is committed), even
//   if fn ignores the error and returns success.
// - Do not open the same directory twice in one process, do not use a store across fork(), and
//   do not nest a write() inside a read() or write() callback on the same thread.
#include <cstddef>
#include <filesystem>
#include <memory>

#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::store {

struct LmdbOptions {
    std::size_t map_size = 256u << 20;  // upper bound of the data file; writes past it fail
    unsigned max_dbs = 32;              // named databases the environment can hold
    bool read_only = false;             // MDB_RDONLY: another process owns the writes
};

class LmdbStore final : public Store {
public:
    /// Opens (and unless read_only, creates with mode 0700) the environment in dir.
    /// Errors: kNotFound if read_only and dir does not exist; kStore for LMDB failures.
    [[nodiscard]] static Result<std::unique_ptr<LmdbStore>> open(const std::filesystem::path& dir,
                                                                 LmdbOptions options = {});
    ~LmdbStore() override;
    LmdbStore(const LmdbStore&) = delete;
    LmdbStore& operator=(const LmdbStore&) = delete;

    [[nodiscard]] Status read(const std::function<Status(const ReadTxn&)>& fn) const override;
    /// Fails with kStore without calling fn when the store was opened read-only.
    [[nodiscard]] Status write(const std::function<Status(WriteTxn&)>& fn) override;

    struct Env;  // LMDB state; defined in lmdb_store.cpp

private:
    explicit LmdbStore(std::unique_ptr<Env> env);
    std::unique_ptr<Env> env_;
};

}  // namespace edge::store

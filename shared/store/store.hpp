#pragma once
// Store: a transactional key-value store with named databases (LMDB in production:
// shared/store/lmdb/lmdb_store.hpp). Values are byte strings; callers own their encoding.
//
// Contracts:
// - write() runs fn inside one write transaction; it commits only when fn returns a value, and
//   the commit is durable (fsynced) before write() returns. If fn returns an error, or the
//   process dies before commit, nothing fn did is visible, ever.
// - read() gives a consistent snapshot. Strings returned are copies, valid after the txn.
// - Named databases are created on first write; reading a missing database finds nothing.
// - Thread-safe, but one write transaction at a time (writes serialize).
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "shared/core/error.hpp"

namespace edge::store {

class ReadTxn {
public:
    virtual ~ReadTxn() = default;
    [[nodiscard]] virtual Result<std::optional<std::string>> get(std::string_view db,
                                                                 std::string_view key) const = 0;
    /// Visits every key of db in key order; stops early when fn returns false.
    [[nodiscard]] virtual Status forEach(
        std::string_view db,
        const std::function<bool(std::string_view key, std::string_view value)>& fn) const = 0;
};

class WriteTxn : public ReadTxn {
public:
    [[nodiscard]] virtual Status put(std::string_view db, std::string_view key,
                                     std::string_view value) = 0;
    /// Deleting a missing key is not an error.
    [[nodiscard]] virtual Status del(std::string_view db, std::string_view key) = 0;
};

class Store {
public:
    virtual ~Store() = default;
    [[nodiscard]] virtual Status read(const std::function<Status(const ReadTxn&)>& fn) const = 0;
    [[nodiscard]] virtual Status write(const std::function<Status(WriteTxn&)>& fn) = 0;

    /// One key in its own read transaction (nullopt when absent).
    [[nodiscard]] Result<std::optional<std::string>> getOne(std::string_view db, std::string_view key) const {
        std::optional<std::string> out;
        auto st = read([&](const ReadTxn& txn) -> Status {
            auto value = txn.get(db, key);
            if (!value) return fail(value.error());
            out = std::move(*value);
            return {};
        });
        if (!st) return fail(st.error());
        return out;
    }
    /// One key in its own durable write transaction.
    [[nodiscard]] Status putOne(std::string_view db, std::string_view key, std::string_view value) {
        return write([&](WriteTxn& txn) { return txn.put(db, key, value); });
    }
};

}  // namespace edge::store

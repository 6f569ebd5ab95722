#pragma once
#include "shared/store/store.hpp"

namespace edge::test {

/// A store that holds nothing: for code under test that never reads back.
class NullStore final : public store::Store {
    class Txn final : public store::WriteTxn {
    public:
        Result<std::optional<std::string>> get(std::string_view, std::string_view) const override {
            return std::optional<std::string>{};
        }
        Status forEach(std::string_view,
                       const std::function<bool(std::string_view, std::string_view)>&) const override {
            return {};
        }
        Status put(std::string_view, std::string_view, std::string_view) override { return {}; }
        Status del(std::string_view, std::string_view) override { return {}; }
    };

public:
    Status read(const std::function<Status(const store::ReadTxn&)>& fn) const override {
        Txn txn;
        return fn(txn);
    }
    Status write(const std::function<Status(store::WriteTxn&)>& fn) override {
        Txn txn;
        return fn(txn);
    }
};

}  // namespace edge::test

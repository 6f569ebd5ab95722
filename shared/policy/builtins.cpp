#include "shared/policy/builtins.hpp"

#include <cassert>
#include <string>
#include <unordered_map>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"

namespace edge::policy {
namespace {

struct BuiltinTable {
    std::vector<Builtin> entries;
    std::unordered_map<std::string_view, const Builtin*> by_name;

    BuiltinTable() {
        detail::addOperatorBuiltins(entries);
        detail::addCollectionBuiltins(entries);
        detail::addEncodingBuiltins(entries);
        detail::addStringBuiltins(entries);
        detail::addRegexBuiltins(entries);
        detail::addTimeBuiltins(entries);
        detail::addUnavailableBuiltins(entries);
        by_name.reserve(entries.size());
        // The vector is complete, so pointers into it stay valid.
        for (const auto& b : entries) {
            [[maybe_unused]] const bool inserted = by_name.emplace(b.name, &b).second;
            assert(inserted && "builtin registered twice");
        }
    }
};

const BuiltinTable& table() {
    static const BuiltinTable instance;
    return instance;
}

}  // namespace

const Builtin* findBuiltin(std::string_view name) {
    const auto& t = table();
    const auto it = t.by_name.find(name);
    return it == t.by_name.end() ? nullptr : it->second;
}

Error typeError(std::string_view builtin, int operand, std::string_view expected,
                const Value& got) {
    std::string msg(builtin);
    msg += ": operand ";
    msg += std::to_string(operand);
    msg += " must be ";
    msg += expected;
    msg += " but got ";
    msg += got.typeName();
    return Error(make_error_code(PolicyErrc::kTypeError), std::move(msg));
}

Error builtinError(std::string_view builtin, std::string_view message) {
    std::string msg(builtin);
    msg += ": ";
    msg += message;
    return Error(make_error_code(PolicyErrc::kBuiltinError), std::move(msg));
}

namespace detail {

std::string oneOf(std::initializer_list<std::string_view> types) {
    std::string out = "one of {";
    bool first = true;
    for (const auto t : types) {
        if (!first) out += ", ";
        first = false;
        out += t;
    }
    out += '}';
    return out;
}

Error operandError(std::string_view builtin, int operand, std::string_view text) {
    std::string msg(builtin);
    msg += ": operand ";
    msg += std::to_string(operand);
    msg += ' ';
    msg += text;
    return Error(make_error_code(PolicyErrc::kTypeError), std::move(msg));
}

Error elementError(std::string_view builtin, int operand, const Value& composite,
                   std::string_view expected, const Value& got) {
    std::string text = "must be ";
    text += composite.typeName();
    text += " of ";
    text += expected;
    text += "s but got ";
    text += composite.typeName();
    text += " containing ";
    text += got.typeName();
    return operandError(builtin, operand, text);
}

Result<std::int64_t> intOperand(std::string_view builtin, int operand, const Value& v) {
    if (!v.isNumber()) return fail(typeError(builtin, operand, "number", v));
    std::int64_t i = 0;
    if (!v.asNumber().toInt(i)) {
        return fail(
            operandError(builtin, operand, "must be integer number but got floating-point number"));
    }
    return i;
}

}  // namespace detail
}  // namespace edge::policy

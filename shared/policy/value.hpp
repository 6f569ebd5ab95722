#pragma once
// Value: the Rego data model (JSON plus sets), immutable and cheap to copy (shared payloads).
// Total order as OPA's: null < boolean < number < string < array < object < set; numbers
// compare by value (1 == 1.0).
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "shared/core/error.hpp"

namespace edge::policy {

enum class Kind : std::uint8_t { kNull, kBool, kNumber, kString, kArray, kObject, kSet };

/// Numbers are integers while they fit in int64 and came from integers; else doubles. A literal
/// that neither holds exactly (an integer past int64, a float past double) also keeps its text,
/// so it compares and prints exactly; arithmetic on it uses the double approximation.
struct Number {
    bool is_int = true;
    std::int64_t i = 0;  // the value when is_int; else the exact literal's address, or 0
    double d = 0;
    /// The exact literal of a number past int64/double, or nullptr. Interned for the life of the
    /// process (bounded in total size; past the bound, numbers keep only their double).
    [[nodiscard]] const std::string* text() const {
        return is_int ? nullptr : reinterpret_cast<const std::string*>(static_cast<std::uintptr_t>(i));
    }
    [[nodiscard]] double asDouble() const { return is_int ? static_cast<double>(i) : d; }
    /// The integer value when the number is integral and fits int64.
    [[nodiscard]] bool toInt(std::int64_t& out) const;
    [[nodiscard]] static Number ofInt(std::int64_t v) { return {true, v, 0}; }
    /// Doubles that are integral and fit are normalised to ints.
    [[nodiscard]] static Number ofDouble(double v);
    /// A JSON/Rego number literal: exact int64, else double, keeping the text when inexact.
    [[nodiscard]] static std::optional<Number> ofLiteral(std::string_view literal);
};

class Value;
using Array = std::vector<Value>;
struct ValueLess {
    using is_transparent = void;  // lets objects be searched by a string key without a Value
    bool operator()(const Value& a, const Value& b) const;
    bool operator()(const Value& a, std::string_view b) const;
    bool operator()(std::string_view a, const Value& b) const;
};
using Object = std::map<Value, Value, ValueLess>;
using Set = std::set<Value, ValueLess>;

class Value {
public:
    Value() = default;  // null
    static Value null() { return {}; }
    static Value boolean(bool b);
    static Value number(std::int64_t i);
    static Value number(double d);
    static Value number(Number n);
    static Value string(std::string s);
    static Value array(Array items);
    static Value object(Object items);
    static Value set(Set items);
    static Value emptyObject();
    static Value emptySet();
    static Value emptyArray();

    [[nodiscard]] Kind kind() const { return static_cast<Kind>(rep_.index()); }
    [[nodiscard]] bool isNull() const { return kind() == Kind::kNull; }
    [[nodiscard]] bool isBool() const { return kind() == Kind::kBool; }
    [[nodiscard]] bool isNumber() const { return kind() == Kind::kNumber; }
    [[nodiscard]] bool isString() const { return kind() == Kind::kString; }
    [[nodiscard]] bool isArray() const { return kind() == Kind::kArray; }
    [[nodiscard]] bool isObject() const { return kind() == Kind::kObject; }
    [[nodiscard]] bool isSet() const { return kind() == Kind::kSet; }
    /// true for everything but the boolean false.
    [[nodiscard]] bool isFalse() const { return isBool() && !asBool(); }

    // Accessors: precondition is the matching kind (checked by assert in debug builds).
    [[nodiscard]] bool asBool() const { return std::get<bool>(rep_); }
    [[nodiscard]] const Number& asNumber() const { return std::get<Number>(rep_); }
    [[nodiscard]] const std::string& asString() const { return *std::get<std::shared_ptr<const std::string>>(rep_); }
    [[nodiscard]] const Array& asArray() const { return *std::get<std::shared_ptr<const Array>>(rep_); }
    [[nodiscard]] const Object& asObject() const { return *std::get<std::shared_ptr<const Object>>(rep_); }
    [[nodiscard]] const Set& asSet() const { return *std::get<std::shared_ptr<const Set>>(rep_); }

    /// Element lookup: array index (integral number), object key, set membership (yields the
    /// element). nullptr when absent or not a collection.
    [[nodiscard]] const Value* get(const Value& key) const;
    /// Object member by string key (nullptr when absent or not an object).
    [[nodiscard]] const Value* get(std::string_view key) const;
    /// Number of elements of a collection or characters (code points) of a string.
    [[nodiscard]] std::size_t size() const;

    [[nodiscard]] int compare(const Value& other) const;
    bool operator==(const Value& other) const { return compare(other) == 0; }
    bool operator<(const Value& other) const { return compare(other) < 0; }

    /// JSON text; sets become sorted arrays; object keys sorted; non-string object keys are
    /// written as their JSON text (as OPA does).
    [[nodiscard]] std::string toJson() const;
    /// Rego term text, e.g. {1, "a"} for sets, used by sprintf %v and error messages.
    [[nodiscard]] std::string toRego() const;
    /// OPA's type name: "null", "boolean", "number", "string", "array", "object", "set".
    [[nodiscard]] std::string_view typeName() const;

private:
    using Rep = std::variant<std::monostate, bool, Number, std::shared_ptr<const std::string>,
                             std::shared_ptr<const Array>, std::shared_ptr<const Object>,
                             std::shared_ptr<const Set>>;
    explicit Value(Rep rep) : rep_(std::move(rep)) {}
    Rep rep_;
};

/// Parses JSON text into a Value (numbers: ints when integral and in range, else doubles).
/// Depth is limited to 512; errors name the offset.
[[nodiscard]] Result<Value> parseJson(std::string_view text);

/// Formats a number as OPA prints it in JSON: integers plainly, other doubles in the shortest
/// form that round-trips.
[[nodiscard]] std::string formatNumber(const Number& n);

}  // namespace edge::policy

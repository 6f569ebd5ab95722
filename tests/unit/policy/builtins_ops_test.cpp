#include <catch2/catch.hpp>

#include "builtin_call.hpp"

using namespace edge::policy;
using namespace edge::policy::test;

TEST_CASE("Builtins: unknown names are not found") {
    CHECK(findBuiltin("no.such.builtin") == nullptr);
    REQUIRE(findBuiltin("plus") != nullptr);
    CHECK(findBuiltin("plus")->arity == 2);
}

TEST_CASE("Builtins: typeError and builtinError are worded as OPA's") {
    const edge::Error t = typeError("count", 1, "array", num(1));
    CHECK(t.message() == "count: operand 1 must be array but got number");
    CHECK(t.code() == make_error_code(PolicyErrc::kTypeError));
    const edge::Error b = builtinError("div", "divide by zero");
    CHECK(b.message() == "div: divide by zero");
    CHECK(b.code() == make_error_code(PolicyErrc::kBuiltinError));
    CHECK(conformanceName(PolicyErrc::kTypeError) == "eval_type_error");
    CHECK(conformanceName(PolicyErrc::kLimit) == "eval_cancel_error");
    CHECK(std::string(policyCategory().name()) == "edge.policy");
}

TEST_CASE("Arithmetic: ints stay ints, overflow and fractions go to doubles") {
    CHECK(eval("plus", {num(1), num(2)}) == num(3));
    CHECK(eval("plus", {num(1), num(2)}).asNumber().is_int);
    CHECK(eval("minus", {num(1), num(4)}) == num(-3));
    CHECK(eval("mul", {num(6), num(7)}) == num(42));
    CHECK(eval("plus", {num(0.5), num(0.25)}) == num(0.75));
    const Value big = eval("plus", {num(INT64_MAX), num(1)});
    CHECK_FALSE(big.asNumber().is_int);
    CHECK(big.asNumber().d == Approx(9.223372036854775808e18));
    CHECK(eval("div", {num(6), num(3)}).asNumber().is_int);
    CHECK(eval("div", {num(7), num(2)}) == num(3.5));
    CHECK(eval("div", {num(1e109), num(1e100)}) == num(1000000000));
    CHECK(eval("rem", {num(7), num(4)}) == num(3));
    CHECK(eval("rem", {num(-7), num(4)}) == num(-3));
    CHECK(eval("rem", {num(INT64_MIN), num(-1)}) == num(0));
}

TEST_CASE("Arithmetic: division and modulo errors") {
    CHECK(failure(PolicyErrc::kBuiltinError, "div", {num(1), num(0)}) == "div: divide by zero");
    CHECK(failure(PolicyErrc::kBuiltinError, "div", {num(1), num(0.0)}) == "div: divide by zero");
    CHECK(failure(PolicyErrc::kBuiltinError, "rem", {num(7), num(0)}) == "rem: modulo by zero");
    CHECK(failure(PolicyErrc::kBuiltinError, "rem", {num(1.1), num(1)}) ==
          "rem: modulo on floating-point number");
    CHECK(failure(PolicyErrc::kTypeError, "plus", {str("a"), num(1)}) ==
          "plus: operand 1 must be number but got string");
    CHECK(failure(PolicyErrc::kTypeError, "mul", {num(1), Value::null()}) ==
          "mul: operand 2 must be number but got null");
}

TEST_CASE("Arithmetic: minus is also set difference, with OPA's operand errors") {
    const Value diff = eval("minus", {Value::set({num(1), num(2), num(3)}), Value::set({num(2)})});
    CHECK(diff == Value::set({num(1), num(3)}));
    CHECK(failure(PolicyErrc::kTypeError, "minus", {Value::set({num(1)}), num(1)}) ==
          "minus: operand 2 must be set but got number");
    CHECK(failure(PolicyErrc::kTypeError, "minus", {num(1), Value::set({num(1)})}) ==
          "minus: operand 2 must be number but got set");
    CHECK(failure(PolicyErrc::kTypeError, "minus", {str("a"), num(1)}) ==
          "minus: operand 1 must be one of {number, set} but got string");
}

TEST_CASE("Arithmetic: abs, round half away from zero, ceil, floor") {
    CHECK(eval("abs", {num(-10)}) == num(10));
    CHECK(eval("abs", {num(-2.5)}) == num(2.5));
    CHECK(eval("round", {num(2.5)}) == num(3));
    CHECK(eval("round", {num(-2.5)}) == num(-3));
    CHECK(eval("round", {num(2.4)}).asNumber().is_int);
    CHECK(eval("ceil", {num(1.01)}) == num(2));
    CHECK(eval("ceil", {num(-1.99999)}) == num(-1));
    CHECK(eval("floor", {num(-1.5)}) == num(-2));
    CHECK(eval("ceil", {num(7)}) == num(7));
}

TEST_CASE("Comparison: any values by the total order") {
    CHECK(eval("equal", {num(1), num(1.0)}) == Value::boolean(true));
    CHECK(eval("neq", {str("a"), num(1)}) == Value::boolean(true));
    CHECK(eval("lt", {num(1), str("a")}) == Value::boolean(true));
    CHECK(eval("gte", {json("[1, 2]"), json("[1]")}) == Value::boolean(true));
    CHECK(eval("gt", {Value::null(), Value::boolean(false)}) == Value::boolean(false));
    CHECK(eval("lte", {num(2), num(2)}) == Value::boolean(true));
}

TEST_CASE("numbers.range: ascending, descending, step and integer checks") {
    CHECK(eval("numbers.range", {num(-2), num(1)}) == json("[-2, -1, 0, 1]"));
    CHECK(eval("numbers.range", {num(2), num(-1)}) == json("[2, 1, 0, -1]"));
    CHECK(eval("numbers.range", {num(0), num(0)}) == json("[0]"));
    CHECK(eval("numbers.range", {num(49649733057), num(49649733058)}) ==
          json("[49649733057, 49649733058]"));
    CHECK(eval("numbers.range_step", {num(0), num(10), num(4)}) == json("[0, 4, 8]"));
    CHECK(eval("numbers.range_step", {num(10), num(0), num(5)}) == json("[10, 5, 0]"));
    CHECK(failure(PolicyErrc::kTypeError, "numbers.range", {num(3.14), num(4)}) ==
          "numbers.range: operand 1 must be integer number but got floating-point number");
    CHECK(failure(PolicyErrc::kTypeError, "numbers.range", {num(1), str("4")}) ==
          "numbers.range: operand 2 must be integer but got string");
    CHECK(failure(PolicyErrc::kBuiltinError, "numbers.range_step", {num(0), num(4), num(0)}) ==
          "numbers.range_step: step must be a positive integer");
    failure(PolicyErrc::kLimit, "numbers.range", {num(INT64_MIN), num(INT64_MAX)});
}

TEST_CASE("Aggregates: count of collections and code points") {
    CHECK(eval("count", {json("[1, 2, 3]")}) == num(3));
    CHECK(eval("count", {json(R"({"a": 1})")}) == num(1));
    CHECK(eval("count", {Value::set({num(1), num(2)})}) == num(2));
    CHECK(eval("count", {str("åäö")}) == num(3));
    CHECK(failure(PolicyErrc::kTypeError, "count", {Value::null()}) ==
          "count: operand 1 must be one of {array, object, set, string} but got null");
}

TEST_CASE("Aggregates: sum and product over arrays and sets") {
    CHECK(eval("sum", {json("[1, 2, 3, 4]")}) == num(10));
    CHECK(eval("sum", {json("[1, 2.5]")}) == num(3.5));
    CHECK(eval("sum", {json("[]")}) == num(0));
    CHECK(eval("product", {Value::set({num(1), num(2), num(3), num(4)})}) == num(24));
    CHECK_FALSE(eval("sum", {Value::array({num(INT64_MAX), num(1)})}).asNumber().is_int);
    CHECK(failure(PolicyErrc::kTypeError, "sum", {json(R"([1, "a"])")}) ==
          "sum: operand 1 must be array of numbers but got array containing string");
    CHECK(failure(PolicyErrc::kTypeError, "product", {Value::set({str("a")})}) ==
          "product: operand 1 must be set of numbers but got set containing string");
    CHECK(failure(PolicyErrc::kTypeError, "sum", {num(1)}) ==
          "sum: operand 1 must be one of {set, array} but got number");
}

TEST_CASE("Aggregates: max, min and sort use the total order, empty max is undefined") {
    CHECK(eval("max", {json("[1, 4, 2]")}) == num(4));
    CHECK(eval("min", {json("[3, 1, 2, 1]")}) == num(1));
    CHECK(eval("max", {json(R"([1, "a", null])")}) == str("a"));
    CHECK(isUndefined("max", {json("[]")}));
    CHECK(isUndefined("min", {Value::emptySet()}));
    CHECK(eval("sort", {json(R"([3, "b", 1, null])")}) == json(R"([null, 1, 3, "b"])"));
    CHECK(eval("sort", {Value::set({num(2), num(1)})}) == json("[1, 2]"));
    CHECK(failure(PolicyErrc::kTypeError, "sort", {str("x")}) ==
          "sort: operand 1 must be one of {set, array} but got string");
}

TEST_CASE("Membership: internal.member_2 and member_3") {
    CHECK(eval("internal.member_2", {num(1), Value::set({num(1)})}) == Value::boolean(true));
    CHECK(eval("internal.member_2", {num(1), json(R"({"foo": 1})")}) == Value::boolean(true));
    CHECK(eval("internal.member_2", {num(1), str("foo")}) == Value::boolean(false));
    CHECK(eval("internal.member_3", {num(1), str("two"), json(R"(["one", "two"])")}) ==
          Value::boolean(true));
    CHECK(eval("internal.member_3", {str("foo"), num(2), json(R"({"foo": 1})")}) ==
          Value::boolean(false));
}

TEST_CASE("Types: is_* predicates and type_name") {
    CHECK(eval("is_number", {num(1.5)}) == Value::boolean(true));
    CHECK(eval("is_number", {Value::null()}) == Value::boolean(false));
    CHECK(eval("is_string", {str("")}) == Value::boolean(true));
    CHECK(eval("is_boolean", {Value::boolean(false)}) == Value::boolean(true));
    CHECK(eval("is_array", {Value::emptySet()}) == Value::boolean(false));
    CHECK(eval("is_set", {Value::emptySet()}) == Value::boolean(true));
    CHECK(eval("is_object", {Value::emptyObject()}) == Value::boolean(true));
    CHECK(eval("is_null", {Value::null()}) == Value::boolean(true));
    CHECK(eval("type_name", {Value::emptySet()}) == str("set"));
    CHECK(eval("type_name", {Value::boolean(true)}) == str("boolean"));
}

TEST_CASE("to_number: strings, booleans, null and numbers") {
    CHECK(eval("to_number", {str("-42.0")}) == num(-42));
    CHECK(eval("to_number", {str("3")}).asNumber().is_int);
    CHECK(eval("to_number", {str("+5")}) == num(5));
    CHECK(eval("to_number", {str(".5")}) == num(0.5));
    CHECK(eval("to_number", {str("1e3")}) == num(1000));
    CHECK(eval("to_number", {str("1e-400")}) == num(0));
    CHECK(eval("to_number", {Value::boolean(true)}) == num(1));
    CHECK(eval("to_number", {Value::boolean(false)}) == num(0));
    CHECK(eval("to_number", {Value::null()}) == num(0));
    CHECK(eval("to_number", {num(100.1)}) == num(100.1));
}

TEST_CASE("to_number: bad strings are builtin errors, inf and nan type errors") {
    CHECK(failure(PolicyErrc::kBuiltinError, "to_number", {str("broken")}) ==
          R"(to_number: strconv.ParseFloat: parsing "broken": invalid syntax)");
    CHECK(failure(PolicyErrc::kBuiltinError, "to_number", {str("1e400")}) ==
          R"(to_number: strconv.ParseFloat: parsing "1e400": value out of range)");
    for (const char* s : {"nan", "inf", "-inf", "Infinity", "-Infinity", "-nan", "-NaN", "iNf"}) {
        INFO(s);
        CHECK(failure(PolicyErrc::kTypeError, "to_number", {str(s)}) ==
              "to_number: operand 1 must be valid number string but got string");
    }
    CHECK(failure(PolicyErrc::kTypeError, "to_number", {json("[]")}) ==
          "to_number: operand 1 must be one of {null, boolean, number, string} but got array");
    failure(PolicyErrc::kBuiltinError, "to_number", {str("")});
    failure(PolicyErrc::kBuiltinError, "to_number", {str(" 1")});
}

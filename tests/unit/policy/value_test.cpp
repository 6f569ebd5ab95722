#include "shared/policy/value.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "builtin_call.hpp"

using edge::policy::Array;
using edge::policy::Kind;
using edge::policy::Number;
using edge::policy::Object;
using edge::policy::Set;
using edge::policy::Value;

using namespace edge::policy::test;

TEST_CASE("Value: kinds order null < boolean < number < string < array < object < set") {
    const std::vector<Value> ordered = {
        Value::null(),     Value::boolean(false), Value::boolean(true),
        num(-5),           Value::number(2.5),    str(""),
        str("a"),          Value::emptyArray(),   Value::emptyObject(),
        Value::emptySet(),
    };
    for (std::size_t i = 0; i + 1 < ordered.size(); ++i) {
        INFO(ordered[i].toRego() << " < " << ordered[i + 1].toRego());
        CHECK(ordered[i] < ordered[i + 1]);
        CHECK(ordered[i + 1].compare(ordered[i]) == 1);
    }
}

TEST_CASE("Value: numbers compare by value, 1 == 1.0 and nested") {
    CHECK(num(1) == Value::number(1.0));
    CHECK(json("[1]") == json("[1.0]"));
    CHECK(json(R"({"x": [1, 2, {"b": 3.0}]})") == json(R"({"x": [1, 2, {"b": 3}]})"));
    CHECK(num(1) < Value::number(1.5));
    CHECK(Value::number(-1.5) < num(-1));
    // int64 vs double without rounding the int: 2^53 + 1 is above the double 2^53.
    CHECK(num(9007199254740993).compare(Value::number(9007199254740992.0)) == 1);
    CHECK(num(INT64_MAX) < Value::number(1e19));
    CHECK(num(INT64_MIN).compare(Value::number(-1e19)) == 1);
}

TEST_CASE("Number: integral doubles in int64 range normalise to ints") {
    CHECK(Number::ofDouble(3.0).is_int);
    CHECK(Number::ofDouble(-0.0).is_int);
    CHECK_FALSE(Number::ofDouble(3.5).is_int);
    CHECK_FALSE(Number::ofDouble(1e19).is_int);
    std::int64_t out = 0;
    CHECK(Number{false, 0, 42.0}.toInt(out));
    CHECK(out == 42);
    CHECK_FALSE(Number{false, 0, 4.2}.toInt(out));
}

TEST_CASE("Value: arrays, objects and sets compare element-wise then by size") {
    CHECK(json("[1, 2]") < json("[1, 3]"));
    CHECK(json("[1, 2]") < json("[1, 2, 0]"));
    CHECK(json(R"({"a": 1})") < json(R"({"a": 2})"));
    CHECK(json(R"({"a": 9})") < json(R"({"b": 0})"));  // keys first, pairwise
    CHECK(json(R"({"a": 1})") < json(R"({"a": 1, "b": 0})"));
    CHECK(Value::set({num(1), num(2)}) < Value::set({num(1), num(3)}));
    CHECK(Value::set({num(2), num(1)}) == Value::set({num(1), num(2)}));
}

TEST_CASE("Value: get indexes arrays by integral numbers, objects by key, sets by member") {
    const Value arr = json(R"(["a", "b"])");
    REQUIRE(arr.get(num(1)) != nullptr);
    CHECK(*arr.get(num(1)) == str("b"));
    CHECK(arr.get(Value::number(1.0)) != nullptr);
    CHECK(arr.get(Value::number(0.5)) == nullptr);
    CHECK(arr.get(num(2)) == nullptr);
    CHECK(arr.get(num(-1)) == nullptr);
    CHECK(arr.get(str("0")) == nullptr);
    const Value obj = Value::object({{num(1), str("one")}});
    REQUIRE(obj.get(Value::number(1.0)) != nullptr);
    CHECK(*obj.get(num(1)) == str("one"));
    const Value set = Value::set({str("x")});
    CHECK(set.get(str("x")) != nullptr);
    CHECK(set.get(str("y")) == nullptr);
    CHECK(str("abc").get(num(0)) == nullptr);
}

TEST_CASE("Value: size counts code points of strings, Go-style for invalid UTF-8") {
    CHECK(str("åäö").size() == 3);
    CHECK(str("abcde").size() == 5);
    CHECK(str("\xff\xfe"
              "a")
              .size() == 3);
    CHECK(json(R"({"a":1,"b":2})").size() == 2);
    CHECK(num(5).size() == 0);
}

TEST_CASE("Value: typeName names OPA's types") {
    CHECK(Value::null().typeName() == "null");
    CHECK(Value::boolean(true).typeName() == "boolean");
    CHECK(num(1).typeName() == "number");
    CHECK(str("").typeName() == "string");
    CHECK(Value::emptyArray().typeName() == "array");
    CHECK(Value::emptyObject().typeName() == "object");
    CHECK(Value::emptySet().typeName() == "set");
}

TEST_CASE("Value: toRego prints Rego terms with Go-quoted strings") {
    CHECK(Value::set({num(2), str("a"), num(1)}).toRego() == R"({1, 2, "a"})");
    CHECK(Value::emptySet().toRego() == "set()");
    CHECK(json(R"({"b": [1, 2.5], "a": null})").toRego() == R"({"a": null, "b": [1, 2.5]})");
    CHECK(str("tab\there \"q\"").toRego() == R"("tab\there \"q\"")");
}

TEST_CASE("Value: toJson is compact, sorted, sets as arrays, Go escaping") {
    CHECK(json(R"({"b": 1, "a": [true, null]})").toJson() == R"({"a":[true,null],"b":1})");
    CHECK(Value::set({num(3), num(1)}).toJson() == "[1,3]");
    CHECK(str("<a&b>").toJson() == R"("\u003ca\u0026b\u003e")");
    CHECK(str("\n\t\x01\b\f\"\\").toJson() == R"("\n\t\u0001\b\f\"\\")");
    CHECK(str("\xe2\x80\xa8 é \xff").toJson() == "\"\\u2028 é \\ufffd\"");
    // Non-string keys are written as their JSON text.
    const Value obj = Value::object({{num(1), str("x")}, {json("[1,2]"), str("y")}});
    CHECK(obj.toJson() == R"({"1":"x","[1,2]":"y"})");
}

TEST_CASE("formatNumber: ints plainly, doubles shortest, exponent form like Go") {
    using edge::policy::formatNumber;
    CHECK(formatNumber(Number::ofInt(-42)) == "-42");
    CHECK(formatNumber(Number::ofDouble(0.1)) == "0.1");
    CHECK(formatNumber(Number::ofDouble(100.25)) == "100.25");
    CHECK(formatNumber(Number::ofDouble(1e20)) == "100000000000000000000");
    CHECK(formatNumber(Number::ofDouble(1e21)) == "1e+21");
    CHECK(formatNumber(Number::ofDouble(1.5e-7)) == "1.5e-7");
    CHECK(formatNumber(Number::ofDouble(0.000001)) == "0.000001");
}

TEST_CASE("parseJson: round trip of a document") {
    const std::string text = R"({"a":[1,-2.5,true,false,null],"b":{"c":"d\u00e9\ud83d\ude00"}})";
    const Value v = json(text);
    CHECK(v.get(str("b"))->get(str("c"))->asString() == "dé😀");
    CHECK(json(v.toJson()) == v);
    CHECK(v.toJson() == R"({"a":[1,-2.5,true,false,null],"b":{"c":"dé😀"}})");
}

TEST_CASE("parseJson: numbers are ints when integral and in range, else doubles") {
    CHECK(json("12").asNumber().is_int);
    CHECK(json("1.0").asNumber().is_int);
    CHECK(json("-9223372036854775808").asNumber().i == INT64_MIN);
    const Value big = json("28857836529306024611913");
    CHECK_FALSE(big.asNumber().is_int);
    CHECK(big.asNumber().d == Approx(2.8857836529306024e22));
    CHECK(json("1e2") == num(100));
}

TEST_CASE("parseJson: lone surrogates and invalid UTF-8 become U+FFFD, duplicates keep last") {
    CHECK(json(R"("\ud800x")").asString() == "\xef\xbf\xbdx");
    CHECK(json("\"a\xff\"").asString() == "a\xef\xbf\xbd");
    CHECK(json(R"({"k": 1, "k": 2})") == json(R"({"k": 2})"));
}

TEST_CASE("parseJson: rejects malformed text and names the offset") {
    using edge::policy::parseJson;
    const auto bad = [](std::string_view text) {
        auto r = parseJson(text);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code() == edge::SharedErrc::kParse);
        return r.error().message();
    };
    CHECK(bad("") == "unexpected end of JSON input");
    CHECK(bad("[1, 2") == "unexpected end of JSON input");
    CHECK(bad("{\"a\" 1}") == "invalid character '1' after object key at offset 5");
    CHECK(bad("[1,]") == "invalid character ']' looking for beginning of value at offset 3");
    CHECK(bad("01") == "invalid character '1' after top-level value at offset 1");
    for (const char* text : {"[1 2]", "{'a':1}", "nul", "+1", "1.", ".5", "1e", "\"\t\"", "\"\\x\"",
                             "\"\\u12g4\"", "{\"a\":1,}", "NaN", "[] []"}) {
        INFO(text);
        CHECK_FALSE(parseJson(text).has_value());
    }
}

TEST_CASE("parseJson: numbers past int64 and double keep their exact text") {
    using edge::policy::parseJson;
    const auto big = parseJson("123456789123456789123");
    REQUIRE(big);
    CHECK(big->toJson() == "123456789123456789123");
    CHECK(*big < *parseJson("123456789123456789124"));
    CHECK(*parseJson("9223372036854775807") < *big);
    CHECK(*parseJson("-123456789123456789123") < *parseJson("-5"));
    const auto huge = parseJson("1e400");
    REQUIRE(huge);
    CHECK(huge->toJson() == "1e400");
    CHECK(*parseJson("1.7e308") < *huge);
}

TEST_CASE("parseJson: nesting is limited to 512 levels") {
    using edge::policy::parseJson;
    const auto nested = [](int depth) {
        return std::string(static_cast<std::size_t>(depth), '[') +
               std::string(static_cast<std::size_t>(depth), ']');
    };
    CHECK(parseJson(nested(512)).has_value());
    auto deep = parseJson(nested(513));
    REQUIRE_FALSE(deep.has_value());
    CHECK(deep.error().message().find("exceeded max depth 512") != std::string::npos);
    CHECK_FALSE(parseJson(nested(100000)).has_value());
}

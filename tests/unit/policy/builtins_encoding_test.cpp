#include <catch2/catch.hpp>

#include "builtin_call.hpp"

using namespace edge::policy;
using namespace edge::policy::test;

TEST_CASE("json.marshal writes compact Go-style JSON") {
    CHECK(eval("json.marshal", {json("[1234567890, 2000000, 1e9]")}) ==
          str("[1234567890,2000000,1000000000]"));
    CHECK(eval("json.marshal", {Value::object({{str("b"), Value::set({num(2), num(1)})},
                                               {str("a"), str("<&>")}})}) ==
          str(R"({"a":"\u003c\u0026\u003e","b":[1,2]})"));
}

TEST_CASE("json.marshal_with_options indents with prefix and indent") {
    const Value arr = json("[1, 2]");
    CHECK(eval("json.marshal_with_options", {arr, json(R"({"indent": "  "})")}) ==
          str("[\n  1,\n  2\n]"));
    CHECK(eval("json.marshal_with_options", {arr, json(R"({"pretty": true})")}) ==
          str("[\n\t1,\n\t2\n]"));
    CHECK(eval("json.marshal_with_options", {arr, json("{}")}) == str("[1,2]"));
    CHECK(eval("json.marshal_with_options",
               {arr, json(R"({"pretty": false, "prefix": "NO!", "indent": "BAD!"})")}) ==
          str("[1,2]"));
    CHECK(eval("json.marshal_with_options",
               {json(R"({"foo": "bar", "bar": "baz"})"), json(R"({"prefix": "JSON => "})")}) ==
          str("JSON => {\nJSON => \t\"bar\": \"baz\",\nJSON => \t\"foo\": \"bar\"\nJSON => }"));
    CHECK(eval("json.marshal_with_options", {json("[]"), json(R"({"prefix": "---"})")}) ==
          str("---[]"));
    CHECK(failure(PolicyErrc::kTypeError, "json.marshal_with_options",
                  {json("[]"), json(R"({"include_winning_lottery_numbers": true})")}) ==
          "json.marshal_with_options: operand 2 object contained unknown key "
          "\"include_winning_lottery_numbers\"");
}

TEST_CASE("json.unmarshal and json.is_valid") {
    CHECK(eval("json.unmarshal", {str(R"([{"foo":[1,2,3]}])")}) == json(R"([{"foo":[1,2,3]}])"));
    CHECK(failure(PolicyErrc::kTypeError, "json.unmarshal", {num(1)}) ==
          "json.unmarshal: operand 1 must be string but got number");
    CHECK(failure(PolicyErrc::kBuiltinError, "json.unmarshal", {str("[1,")})
              .starts_with("json.unmarshal: unexpected end of JSON input"));
    CHECK(eval("json.is_valid", {str(R"({"a": 1})")}) == Value::boolean(true));
    CHECK(eval("json.is_valid", {str("{a: 1}")}) == Value::boolean(false));
    CHECK(eval("json.is_valid", {num(1)}) == Value::boolean(false));
}

TEST_CASE("base64: encode, decode, is_valid as Go's StdEncoding") {
    CHECK(eval("base64.encode", {str("hello")}) == str("aGVsbG8="));
    CHECK(eval("base64.encode", {str("subjects?_d")}) == str("c3ViamVjdHM/X2Q="));
    CHECK(eval("base64.decode", {str("aGVsbG8=")}) == str("hello"));
    CHECK(eval("base64.decode", {str("aGVs\nbG8=")}) == str("hello"));
    CHECK(eval("base64.is_valid", {str("aGVsbG8=")}) == Value::boolean(true));
    CHECK(eval("base64.is_valid", {str("{'not':'base64'}")}) == Value::boolean(false));
    CHECK(eval("base64.is_valid", {str("aGVsbG8")}) == Value::boolean(false));
    CHECK(failure(PolicyErrc::kBuiltinError, "base64.decode", {str("aGVs*G8=")}) ==
          "base64.decode: illegal base64 data at input byte 4");
    CHECK(failure(PolicyErrc::kBuiltinError, "base64.decode", {str("aGVsbG8")}) ==
          "base64.decode: illegal base64 data at input byte 4");
    CHECK(failure(PolicyErrc::kBuiltinError, "base64.decode", {str("aGVsbG8=x")}) ==
          "base64.decode: illegal base64 data at input byte 8");
}

TEST_CASE("base64: decoded bytes are kept raw and counted as Go runes") {
    const Value raw = eval("base64.decode", {str("2E84ZuPUd7zfvCZSNEchVpDEIj6PL7JfLpIqyxVG16k=")});
    CHECK(raw.asString().size() == 32);
    CHECK(eval("count", {raw}) == num(30));
}

TEST_CASE("base64url: padded and unpadded forms") {
    CHECK(eval("base64url.encode", {str("hello")}) == str("aGVsbG8="));
    CHECK(eval("base64url.encode_no_pad", {str("there")}) == str("dGhlcmU"));
    CHECK(eval("base64url.encode", {str("\xfb\xff")}) == str("-_8="));
    CHECK(eval("base64url.decode", {str("aGVsbG8")}) == str("hello"));
    CHECK(eval("base64url.decode", {str("aGVsbG8=")}) == str("hello"));
    CHECK(failure(PolicyErrc::kBuiltinError, "base64url.decode", {str("a")}) ==
          "base64url.decode: illegal base64url string: a");
}

TEST_CASE("hex: encode and decode with Go's errors") {
    CHECK(eval("hex.encode", {str("lorem ipsum")}) == str("6c6f72656d20697073756d"));
    CHECK(eval("hex.decode", {str("6C6f")}) == str("lo"));
    CHECK(failure(PolicyErrc::kBuiltinError, "hex.decode", {str("fghijkl")}) ==
          "hex.decode: encoding/hex: invalid byte: U+0067 'g'");
    CHECK(failure(PolicyErrc::kBuiltinError, "hex.decode", {str("abc")}) ==
          "hex.decode: encoding/hex: odd length hex string");
}

TEST_CASE("urlquery: encode, decode, objects") {
    CHECK(eval("urlquery.encode", {str("a=b+1 c")}) == str("a%3Db%2B1+c"));
    CHECK(eval("urlquery.decode", {str("a%3Db%2B1+c")}) == str("a=b+1 c"));
    CHECK(failure(PolicyErrc::kBuiltinError, "urlquery.decode", {str("a%zzb")}) ==
          R"(urlquery.decode: invalid URL escape "%zz")");
    CHECK(eval("urlquery.encode_object", {json(R"({"c": "d", "a": ["b+1", "c+2"]})")}) ==
          str("a=b%2B1&a=c%2B2&c=d"));
    CHECK(eval("urlquery.encode_object", {Value::object({{str("a"), Value::set({str("x")})}})}) ==
          str("a=x"));
    CHECK(failure(PolicyErrc::kTypeError, "urlquery.encode_object", {json(R"({"a": 1})")}) ==
          "urlquery.encode_object: operand 1 values must be string, array[string], or set[string]");
    CHECK(eval("urlquery.decode_object", {str("a=value_a1&b=value_b&a=value_a2")}) ==
          json(R"({"a": ["value_a1", "value_a2"], "b": ["value_b"]})"));
    CHECK(eval("urlquery.decode_object", {str("a=1&b")}) == json(R"({"a": ["1"], "b": [""]})"));
    CHECK(eval("urlquery.decode_object", {str("")}) == json("{}"));
}

TEST_CASE("yaml.unmarshal types plain scalars as go-yaml v2 does") {
    const Value v = eval("yaml.unmarshal", {str("a: 1\n"
                                                "b: 1.5\n"
                                                "c: true\n"
                                                "d: ~\n"
                                                "e: \"true\"\n"
                                                "f: yes\n"
                                                "g: 0x1F\n"
                                                "h: 2001-12-14\n"
                                                "i: 1_000\n"
                                                "j:\n"
                                                "k: [1, two]\n"
                                                "1: int key\n")});
    CHECK(v == json(R"({"a": 1, "b": 1.5, "c": true, "d": null, "e": "true", "f": true,
                        "g": 31, "h": "2001-12-14", "i": 1000, "j": null, "k": [1, "two"],
                        "1": "int key"})"));
    CHECK(eval("yaml.unmarshal", {str("")}) == Value::null());
    CHECK(eval("yaml.unmarshal", {str("base: &b {p: 1, q: 2}\nderived:\n  <<: *b\n  q: 3\n")}) ==
          json(R"({"base": {"p": 1, "q": 2}, "derived": {"p": 1, "q": 3}})"));
    // YAML 1.1 booleans apply to keys too (go-yaml v2, then sigs.k8s.io/yaml's key strings).
    CHECK(eval("yaml.unmarshal", {str("y: 1\non: 2")}) == json(R"({"true": 2})"));
}

TEST_CASE("yaml.unmarshal errors read like go-yaml's") {
    CHECK(failure(PolicyErrc::kBuiltinError, "yaml.unmarshal", {str("[1,2,3")})
              .starts_with("yaml.unmarshal: yaml: line 1: did not find"));
    failure(PolicyErrc::kBuiltinError, "yaml.unmarshal", {str("a: .inf")});
    CHECK(failure(PolicyErrc::kTypeError, "yaml.unmarshal", {num(1)}) ==
          "yaml.unmarshal: operand 1 must be string but got number");
    CHECK(eval("yaml.is_valid", {str("a: [1")}) == Value::boolean(false));
    CHECK(eval("yaml.is_valid", {str("a: 1")}) == Value::boolean(true));
    CHECK(eval("yaml.is_valid", {num(1)}) == Value::boolean(false));
}

TEST_CASE("yaml.marshal writes block style that reads back to the same value") {
    CHECK(eval("yaml.marshal", {json(R"([{"foo": [1, 2]}])")}) == str("- foo:\n  - 1\n  - 2\n"));
    CHECK(eval("yaml.marshal", {json(R"({"a": {"b": "c"}, "d": []})")}) ==
          str("a:\n  b: c\nd: []\n"));
    const Value tricky = Value::object({
        {str("s"), Value::set({num(1), num(2)})},
        {str("strings"), json(R"(["true", "1.5", "", "a: b", "- x", "multi\nline", "yes", "#c",
                                   " lead", "0x10", "null", "ok text"])")},
        {str("nested"), json(R"([[1, [2]], {"k": {}}, null, false, 2.5])")},
        {str("key: odd"), num(1)},
    });
    const Value text = eval("yaml.marshal", {tricky});
    INFO(text.asString());
    const Value back = eval("yaml.unmarshal", {text});
    CHECK(back == json(R"({"s": [1, 2],
        "strings": ["true", "1.5", "", "a: b", "- x", "multi\nline", "yes", "#c", " lead",
                    "0x10", "null", "ok text"],
        "nested": [[1, [2]], {"k": {}}, null, false, 2.5], "key: odd": 1})"));
}

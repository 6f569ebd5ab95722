#include <catch2/catch.hpp>

#include "builtin_call.hpp"

using namespace edge::policy;
using namespace edge::policy::test;

TEST_CASE("array.*: concat, slice with clamping, reverse, flatten") {
    CHECK(eval("array.concat", {json("[1, 2]"), json("[3]")}) == json("[1, 2, 3]"));
    CHECK(failure(PolicyErrc::kTypeError, "array.concat", {json("[1]"), json(R"({"a": 1})")}) ==
          "array.concat: operand 2 must be array but got object");
    const Value five = json("[1, 2, 3, 4, 5]");
    CHECK(eval("array.slice", {five, num(1), num(3)}) == json("[2, 3]"));
    CHECK(eval("array.slice", {five, num(-1), num(2)}) == json("[1, 2]"));
    CHECK(eval("array.slice", {five, num(3), num(6)}) == json("[4, 5]"));
    CHECK(eval("array.slice", {five, num(4), num(1)}) == json("[]"));
    CHECK(eval("array.slice", {five, num(-4), num(-1)}) == json("[]"));
    CHECK(failure(PolicyErrc::kTypeError, "array.slice", {five, num(1.5), num(2)}) ==
          "array.slice: operand 2 must be integer number but got floating-point number");
    CHECK(eval("array.reverse", {json("[1, 2, 3]")}) == json("[3, 2, 1]"));
    CHECK(failure(PolicyErrc::kTypeError, "array.reverse", {json(R"({"a": 1})")}) ==
          "array.reverse: operand 1 must be array but got object");
    CHECK(eval("array.flatten", {json(R"([[1, 2], "s", [[3]]])")}) == json(R"([1, 2, "s", [3]])"));
}

TEST_CASE("object.get: key, default and path forms") {
    const Value obj = json(R"({"a": {"b": [{"c": 1}]}})");
    CHECK(eval("object.get", {obj, str("x"), str("dflt")}) == str("dflt"));
    CHECK(eval("object.get", {obj, json(R"(["a", "b", 0, "c"])"), num(2)}) == num(1));
    CHECK(eval("object.get", {obj, json(R"(["a", "b", "a"])"), num(2)}) == num(2));
    CHECK(eval("object.get", {obj, json("[]"), num(2)}) == obj);
    const Value int_keys = Value::object({{num(1), json(R"({"b": 5})")}});
    CHECK(eval("object.get", {int_keys, num(1), num(3)}) == json(R"({"b": 5})"));
    CHECK(eval("object.get", {int_keys, Value::array({num(1), str("b")}), num(3)}) == num(5));
    CHECK(
        failure(PolicyErrc::kTypeError, "object.get", {str("object"), json(R"(["a"])"), num(2)}) ==
        "object.get: operand 1 must be object but got string");
}

TEST_CASE("object.remove and object.filter take keys as object, set or array") {
    const Value obj = json(R"({"a": 1, "b": {"c": 3}, "d": 4})");
    CHECK(eval("object.remove", {obj, Value::set({str("b"), str("d")})}) == json(R"({"a": 1})"));
    CHECK(eval("object.remove", {obj, json(R"({"b": 1, "d": ""})")}) == json(R"({"a": 1})"));
    CHECK(eval("object.remove", {obj, json("[]")}) == obj);
    CHECK(eval("object.filter", {obj, json(R"(["a", "d", "z"])")}) == json(R"({"a": 1, "d": 4})"));
    CHECK(failure(PolicyErrc::kTypeError, "object.remove", {obj, str("foo")}) ==
          "object.remove: operand 2 must be one of {object, set, array} but got string");
    CHECK(failure(PolicyErrc::kTypeError, "object.filter", {Value::null(), json("[]")}) ==
          "object.filter: operand 1 must be object but got null");
}

TEST_CASE("object.union merges nested objects, right side wins otherwise") {
    CHECK(eval("object.union", {json(R"({"a": {"b": {"c": 1}}, "e": 1})"),
                                json(R"({"a": {"b": "foo", "b1": "bar"}, "d": 7, "e": 17})")}) ==
          json(R"({"a": {"b": "foo", "b1": "bar"}, "d": 7, "e": 17})"));
    CHECK(eval("object.union", {json(R"({"a": {"x": 1}})"), json(R"({"a": {"y": 2}})")}) ==
          json(R"({"a": {"x": 1, "y": 2}})"));
    CHECK(failure(PolicyErrc::kTypeError, "object.union", {json("[1]"), json("{}")}) ==
          "object.union: operand 1 must be object but got array");
}

TEST_CASE("object.union_n folds left to right and rejects non-objects") {
    CHECK(eval("object.union_n", {json(R"([{"a": {"b": 2}}, {"a": 4}, {"a": {"c": 3}}])")}) ==
          json(R"({"a": {"c": 3}})"));
    CHECK(eval("object.union_n", {json("[]")}) == json("{}"));
    CHECK(failure(PolicyErrc::kTypeError, "object.union_n", {json(R"([{"foo": 1}, "baz"])")}) ==
          "object.union_n: operand 1 must be array of objects but got array containing string");
}

TEST_CASE("object.keys returns a set, object.subset compares recursively") {
    CHECK(eval("object.keys", {json(R"({"a": 1, "b": 2})")}) == Value::set({str("a"), str("b")}));
    CHECK(eval("object.subset", {json(R"({"a": {"b": 1, "c": 2}, "d": [1, 2, 3]})"),
                                 json(R"({"a": {"b": 1}, "d": [2, 3]})")}) == Value::boolean(true));
    CHECK(eval("object.subset", {json("[1, 2, 3]"), json("[1, 3]")}) == Value::boolean(false));
    CHECK(eval("object.subset", {json("[1, 2, 3]"), Value::set({num(3), num(1)})}) ==
          Value::boolean(true));
    CHECK(failure(PolicyErrc::kTypeError, "object.subset", {json("{}"), json("[]")})
              .find("must be of the same type or array and set") != std::string::npos);
}

TEST_CASE("Set operators and aggregates: and, or, intersection, union") {
    const Value a = Value::set({num(1), num(2), num(3)});
    const Value b = Value::set({num(2), num(3), num(4)});
    CHECK(eval("and", {a, b}) == Value::set({num(2), num(3)}));
    CHECK(eval("or", {a, b}) == Value::set({num(1), num(2), num(3), num(4)}));
    CHECK(eval("intersection", {Value::set({a, b})}) == Value::set({num(2), num(3)}));
    CHECK(eval("intersection", {Value::emptySet()}) == Value::emptySet());
    CHECK(eval("union", {Value::set({a, b, Value::emptySet()})}) ==
          Value::set({num(1), num(2), num(3), num(4)}));
    CHECK(failure(PolicyErrc::kTypeError, "and", {a, json("[1]")}) ==
          "and: operand 2 must be set but got array");
    CHECK(failure(PolicyErrc::kTypeError, "union", {Value::set({num(1)})}) ==
          "union: operand 1 must be set but got number");
}

TEST_CASE("json.filter keeps the selected paths") {
    const Value doc = json(R"({"a": {"b": {"c": 7, "d": 8}, "e": 9}, "f": 1})");
    CHECK(eval("json.filter", {doc, Value::set({str("a/b/c"), str("a/e")})}) ==
          json(R"({"a": {"b": {"c": 7}, "e": 9}})"));
    CHECK(eval("json.filter", {doc, json(R"([["a", "b"], "a/b/c"])")}) ==
          json(R"({"a": {"b": {"c": 7, "d": 8}}})"));
    CHECK(eval("json.filter", {json(R"({"a": [{"b": 7, "c": 8}, {"d": 9}]})"),
                               Value::set({str("a/0/b"), str("a/1")})}) ==
          json(R"({"a": [{"b": 7}, {"d": 9}]})"));
    CHECK(eval("json.filter", {doc, Value::emptySet()}) == json("{}"));
}

TEST_CASE("json.remove drops the selected paths and checks its operands") {
    const Value doc = json(R"({"a": {"b": {"c": 7, "d": 8}}, "e": 9})");
    CHECK(eval("json.remove", {doc, Value::set({str("a/b/c"), str("e")})}) ==
          json(R"({"a": {"b": {"d": 8}}})"));
    CHECK(eval("json.remove", {json(R"({"a": {"b": 7}, "c": 1})"), json(R"(["a", "a/b"])")}) ==
          json(R"({"c": 1})"));
    CHECK(eval("json.remove", {json(R"({"a": [{"b": 7, "c": 8}, {"d": 9}]})"),
                               Value::set({str("a/0/b"), str("a/1")})}) ==
          json(R"({"a": [{"c": 8}]})"));
    CHECK(failure(PolicyErrc::kTypeError, "json.remove", {json("[]"), json("[]")}) ==
          "json.remove: operand 1 must be object but got array");
    CHECK(failure(PolicyErrc::kTypeError, "json.remove", {doc, num(22)}) ==
          "json.remove: operand 2 must be one of {set, array} but got number");
    CHECK(failure(PolicyErrc::kTypeError, "json.remove", {doc, json(R"(["a", 1])")}) ==
          "json.remove: operand 2 must be one of {set, array} containing string paths or array "
          "of path segments but got number");
}

TEST_CASE("json.patch applies RFC 6902 operations") {
    const auto patch = [](std::string_view doc, std::string_view ops) {
        return eval("json.patch", {json(doc), json(ops)});
    };
    CHECK(patch(R"({"foo": "bar"})", R"([{"op": "add", "path": "/baz", "value": "qux"}])") ==
          json(R"({"baz": "qux", "foo": "bar"})"));
    CHECK(patch(R"({"foo": ["bar", "baz"]})", R"([{"op": "add", "path": "/foo/1", "value": 1}])") ==
          json(R"({"foo": ["bar", 1, "baz"]})"));
    CHECK(patch("[1, 2]", R"([{"op": "add", "path": "/-", "value": 3}])") == json("[1, 2, 3]"));
    CHECK(patch(R"({"foo": ["bar", "qux", "baz"]})", R"([{"op": "remove", "path": "/foo/1"}])") ==
          json(R"({"foo": ["bar", "baz"]})"));
    CHECK(patch(R"({"baz": "qux"})", R"([{"op": "replace", "path": "/baz", "value": "boo"}])") ==
          json(R"({"baz": "boo"})"));
    CHECK(patch(R"({"foo": ["all", "grass", "cows", "eat"]})",
                R"([{"op": "move", "from": "/foo/1", "path": "/foo/3"}])") ==
          json(R"({"foo": ["all", "cows", "eat", "grass"]})"));
    CHECK(patch(R"({"a": {"b": 1}})", R"([{"op": "copy", "from": "/a", "path": "/c"}])") ==
          json(R"({"a": {"b": 1}, "c": {"b": 1}})"));
    CHECK(patch(R"({"/": 9, "~1": 10})", R"([{"op": "test", "path": "/~01", "value": 10}])") ==
          json(R"({"/": 9, "~1": 10})"));
    CHECK(patch(R"({"foo": 1})", R"([{"op": "replace", "path": "", "value": [1]}])") ==
          json("[1]"));
    CHECK(patch(R"({})", R"([{"op": "add", "path": "/", "value": 1}])") == json(R"({"": 1})"));
    const Value with_set = Value::object({{str("s"), Value::set({str("a")})}});
    CHECK(
        eval("json.patch", {with_set, json(R"([{"op": "add", "path": "/s/b", "value": "b"}])")}) ==
        Value::object({{str("s"), Value::set({str("a"), str("b")})}}));
}

TEST_CASE("json.patch is undefined when an operation fails") {
    const auto undefined = [](std::string_view doc, std::string_view ops) {
        return isUndefined("json.patch", {json(doc), json(ops)});
    };
    CHECK(undefined(R"({"q": {"bar": 2}})", R"([{"op": "add", "path": "/a/b", "value": 1}])"));
    CHECK(undefined(R"({"baz": "qux"})", R"([{"op": "test", "path": "/baz", "value": "bar"}])"));
    CHECK(undefined(R"({"bar": [1, 2]})", R"([{"op": "add", "path": "/bar/8", "value": 5}])"));
    CHECK(undefined(R"(["foo", "bar"])", R"([{"op": "test", "path": "/01", "value": "bar"}])"));
    CHECK(undefined(R"(["foo", "bar"])", R"([{"op": "test", "path": "/1e0", "value": "bar"}])"));
    CHECK(undefined(R"({"foo": "bar"})", R"([{"op": "remove", "path": "/baz"}])"));
    CHECK(undefined(R"({"foo": 1})", R"([{"op": "spam", "path": "/foo", "value": 1}])"));
    CHECK(undefined("[1]", R"([{"op": "add", "path": "/-"}])"));
    CHECK(undefined(R"({"foo": 1})", R"([{"op": "move", "from": "/bar", "path": "/foo"}])"));
    CHECK(failure(PolicyErrc::kTypeError, "json.patch", {json("{}"), json("{}")}) ==
          "json.patch: operand 2 must be array but got object");
}

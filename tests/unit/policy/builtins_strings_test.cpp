#include <catch2/catch.hpp>

#include "tests/unit/policy/builtin_call.hpp"

using namespace edge::policy;
using namespace edge::policy::test;

namespace {

std::string regoSprintf(std::string format, std::vector<Value> args) {
    const Value v = eval("sprintf", {str(std::move(format)), Value::array(std::move(args))});
    REQUIRE(v.isString());
    return v.asString();
}

}  // namespace

TEST_CASE("concat: joins an array in order and a set in its sorted order") {
    CHECK(eval("concat", {str("/"), strs({"", "foo", "bar", "0", "baz"})}) ==
          str("/foo/bar/0/baz"));
    CHECK(eval("concat", {str(","), Value::set({str("b"), str("a")})}) == str("a,b"));
    CHECK(eval("concat", {str(","), Value::emptyArray()}) == str(""));
}

TEST_CASE("concat: a non-string element is a type error naming the element type") {
    const auto msg =
        failure(PolicyErrc::kTypeError, "concat", {str(","), Value::array({str("a"), num(1)})});
    CHECK(msg == "concat: operand 2 must be array of strings but got array containing number");
}

TEST_CASE("contains, startswith and endswith compare bytes") {
    CHECK(eval("contains", {str("abcdefgh"), str("defg")}) == Value::boolean(true));
    CHECK(eval("contains", {str("abcdefgh"), str("ac")}) == Value::boolean(false));
    CHECK(eval("startswith", {str("abcdefgh"), str("abcd")}) == Value::boolean(true));
    CHECK(eval("endswith", {str("abcdefgh"), str("fg")}) == Value::boolean(false));
    CHECK(failure(PolicyErrc::kTypeError, "contains", {num(1), str("a")}) ==
          "contains: operand 1 must be string but got number");
}

TEST_CASE("format_int: truncates toward zero and formats in bases 2, 8, 10 and 16") {
    CHECK(eval("format_int", {num(15.5), num(16)}) == str("f"));
    CHECK(eval("format_int", {num(3.1), num(10)}) == str("3"));
    CHECK(eval("format_int", {num(-15.9), num(16)}) == str("-f"));
    CHECK(eval("format_int", {num(5), num(2)}) == str("101"));
    CHECK(eval("format_int", {num(64), num(8)}) == str("100"));
    CHECK_THAT(failure(PolicyErrc::kTypeError, "format_int", {num(4.1), num(199)}),
               Catch::Contains("operand 2 must be one of {2, 8, 10, 16}"));
}

TEST_CASE("indexof and indexof_n count code points, -1 when absent") {
    CHECK(eval("indexof", {str("abcabcabcdefgh"), str("cde")}) == num(8));
    CHECK(eval("indexof", {str("abcdefgh"), str("xyz")}) == num(-1));
    CHECK(eval("indexof", {str("skön var våren"), str("vår")}) == num(9));
    CHECK(eval("indexof", {str("🍧🍨🧁🍰🍮"), str("🍮")}) == num(4));
    CHECK(eval("indexof", {str("μ"), str("μμ")}) == num(-1));
    CHECK(eval("indexof_n", {str("😇😀😇😀😇😀"), str("😀")}) == Value::array({num(1), num(3), num(5)}));
    CHECK(eval("indexof_n", {str("dogcat"), str("rabbit")}) == Value::emptyArray());
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "indexof", {str("a"), str("")}),
               Catch::Contains("empty search character"));
}

TEST_CASE("substring: code points, negative length runs to the end, past the end is empty") {
    CHECK(eval("substring", {str("abcdefgh"), num(2), num(3)}) == str("cde"));
    CHECK(eval("substring", {str("åäö"), num(0), num(2)}) == str("åä"));
    CHECK(eval("substring", {str("aåäö"), num(2), num(-1)}) == str("äö"));
    CHECK(eval("substring", {str("abcdefghåäö"), num(2), num(10000)}) == str("cdefghåäö"));
    CHECK(eval("substring", {str("åäö"), num(3), num(-1)}) == str(""));
    CHECK(eval("substring", {str("aaa"), num(4), num(-1)}) == str(""));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "substring", {str("aaa"), num(-1), num(-1)}),
               Catch::Contains("negative offset"));
    CHECK_THAT(failure(PolicyErrc::kTypeError, "substring", {str("aaa"), num(1.5), num(1)}),
               Catch::Contains("operand 2 must be integer number but got floating-point number"));
}

TEST_CASE("lower and upper map Unicode letters") {
    CHECK(eval("lower", {str("AbCdEf")}) == str("abcdef"));
    CHECK(eval("upper", {str("AbCdEf")}) == str("ABCDEF"));
    CHECK(eval("lower", {str("ÅÄÖ ΣΑΣ")}) == str("åäö σασ"));
    CHECK(eval("upper", {str("straße")}) == str("STRAßE"));
}

TEST_CASE("split: every separator makes a piece, an empty separator splits code points") {
    CHECK(eval("split", {str("foo.bar.baz"), str(".")}) == strs({"foo", "bar", "baz"}));
    CHECK(eval("split", {str("foo"), str(".")}) == strs({"foo"}));
    CHECK(eval("split", {str(".a."), str(".")}) == strs({"", "a", ""}));
    CHECK(eval("split", {str("åb"), str("")}) == strs({"å", "b"}));
}

TEST_CASE("replace: replaces every non-overlapping occurrence, left to right") {
    CHECK(eval("replace", {str("foo...bar"), str(".."), str(",,")}) == str("foo,,.bar"));
    CHECK(eval("replace", {str(""), str("hi"), str("bye")}) == str(""));
    CHECK(eval("replace", {str("ab"), str(""), str("-")}) == str("-a-b-"));
}

TEST_CASE("strings.replace_n: the earliest key (sorted) wins at each position") {
    const auto patterns = Value::object({{str("<"), str("&lt;")}, {str(">"), str("&gt;")}});
    CHECK(eval("strings.replace_n", {patterns, str("This is <b>HTML</b>!")}) ==
          str("This is &lt;b&gt;HTML&lt;/b&gt;!"));
    const auto overlapping = Value::object({{str("f"), str("x")}, {str("foo"), str("xxx")}});
    CHECK(eval("strings.replace_n", {overlapping, str("foobar")}) == str("xoobar"));
}

TEST_CASE("strings.replace_n: non-string keys, values and subjects are type errors") {
    CHECK(failure(PolicyErrc::kTypeError, "strings.replace_n",
                  {Value::object({{num(2), str("x")}}), str("foo")}) ==
          "strings.replace_n: operand 1 non-string key found in pattern object");
    CHECK(failure(PolicyErrc::kTypeError, "strings.replace_n",
                  {Value::object({{str("f"), num(100)}}), str("foo")}) ==
          "strings.replace_n: operand 1 non-string value found in pattern object");
    CHECK(failure(PolicyErrc::kTypeError, "strings.replace_n",
                  {Value::object({{str("foo"), str("baz")}}), num(100)}) ==
          "strings.replace_n: operand 2 must be string but got number");
}

TEST_CASE("trim family: cutsets are sets of code points, prefix and suffix are exact") {
    CHECK(eval("trim", {str("¡¡¡foo, bar!!!"), str("!¡")}) == str("foo, bar"));
    CHECK(eval("trim", {str("...foo.bar..."), str(".fr")}) == str("oo.ba"));
    CHECK(eval("trim", {str("¡¡¡foo, bar!!!"), str("i")}) == str("¡¡¡foo, bar!!!"));
    CHECK(eval("trim_left", {str("¡¡¡foo, bar!!!"), str("!¡")}) == str("foo, bar!!!"));
    CHECK(eval("trim_right", {str("¡¡¡foo, bar!!!"), str("!¡")}) == str("¡¡¡foo, bar"));
    CHECK(eval("trim_prefix", {str("¡¡¡foo, bar!!!"), str("¡¡¡foo")}) == str(", bar!!!"));
    CHECK(eval("trim_suffix", {str("¡¡¡foo, bar!!!"), str(", bar!!!")}) == str("¡¡¡foo"));
    CHECK(eval("trim_suffix", {str("¡¡¡foo, bar!!!"), str(", foo!!!")}) == str("¡¡¡foo, bar!!!"));
    CHECK(eval("trim_space", {str(" \t\n foo, bar \n\t\r\n")}) == str("foo, bar"));
    CHECK(eval("trim_space", {str("\u00a0\u3000x\u2003")}) == str("x"));
}

TEST_CASE("strings.reverse reverses code points, strings.count counts non-overlapping matches") {
    CHECK(eval("strings.reverse", {str("1😀𝛾")}) == str("𝛾😀1"));
    CHECK(eval("strings.reverse", {str("")}) == str(""));
    CHECK_THAT(failure(PolicyErrc::kTypeError, "strings.reverse", {num(123)}),
               Catch::Contains("reverse: operand 1 must be string but got number"));
    CHECK(eval("strings.count", {str("cheese"), str("e")}) == num(3));
    CHECK(eval("strings.count", {str("11111"), str("11")}) == num(2));
    CHECK(eval("strings.count", {str("dummy"), str("")}) == num(6));
    CHECK(eval("strings.count", {str(""), str("")}) == num(1));
}

TEST_CASE("strings.any_prefix_match and any_suffix_match take strings, arrays or sets") {
    CHECK(eval("strings.any_prefix_match", {strs({"a/b/c", "e/f/g"}), strs({"d/", "e/f/g"})}) ==
          Value::boolean(true));
    CHECK(eval("strings.any_prefix_match", {strs({"aa/bb/cc"}), strs({"b/cc"})}) ==
          Value::boolean(false));
    CHECK(eval("strings.any_prefix_match", {str("a/b/c"), Value::set({str("a/")})}) ==
          Value::boolean(true));
    CHECK(eval("strings.any_prefix_match", {Value::emptyArray(), str("")}) ==
          Value::boolean(false));
    CHECK(eval("strings.any_suffix_match", {str("a/b/c"), strs({"x", "b/c"})}) ==
          Value::boolean(true));
    CHECK(failure(PolicyErrc::kTypeError, "strings.any_prefix_match",
                  {Value::array({num(1)}), strs({"f/"})}) ==
          "strings.any_prefix_match: operand 1 must be array of strings but got array containing "
          "number");
    CHECK(failure(PolicyErrc::kTypeError, "strings.any_prefix_match", {strs({"a"}), num(1)}) ==
          "strings.any_prefix_match: operand 2 must be one of {string, set, array} but got number");
}

TEST_CASE("sprintf: %s and %v print strings raw and other values as Rego text") {
    CHECK(regoSprintf("hi", {}) == "hi");
    CHECK(regoSprintf("hi %s", {str("there")}) == "hi there");
    CHECK(regoSprintf("hi %s", {Value::boolean(true)}) == "hi true");
    CHECK(regoSprintf("hi %v", {Value::array({str("there"), num(5), num(3.14)})}) ==
          "hi [\"there\", 5, 3.14]");
    CHECK(regoSprintf("%v|%v", {Value::null(), Value::object({{str("a"), num(1)}})}) ==
          "null|{\"a\": 1}");
    CHECK(regoSprintf("%v", {Value::set({num(1), num(2)})}) == "{1, 2}");
    CHECK(regoSprintf("%v %v", {num(7), num(2.5)}) == "7 2.5");
}

TEST_CASE("sprintf: integer verbs %d %b %o %x %X %c %q %U with flags, width and precision") {
    CHECK(regoSprintf("hi %02X.%02X", {num(127), num(1)}) == "hi 7F.01");
    CHECK(regoSprintf("%d|%5d|%-5d|%05d|%+d", {num(42), num(42), num(42), num(-42), num(42)}) ==
          "42|   42|42   |-0042|+42");
    CHECK(regoSprintf("%b %o %#o %x %#x %X", {num(5), num(8), num(8), num(255), num(255),
                                              num(-255)}) == "101 10 010 ff 0xff -FF");
    CHECK(regoSprintf("%.3d|%c|%q|%U", {num(7), num(65), num(0x263A), num(0x1F600)}) ==
          "007|A|'☺'|U+1F600");
}

TEST_CASE("sprintf: float verbs %f %.2f %e %E %g %G and %v use Go's formatting") {
    CHECK(regoSprintf("hi %.2f", {num(3.1415)}) == "hi 3.14");
    CHECK(regoSprintf("%f", {num(2.5)}) == "2.500000");
    CHECK(regoSprintf("%e|%E|%.2e", {num(123456.789), num(0.000125), num(2.5)}) ==
          "1.234568e+05|1.250000E-04|2.50e+00");
    CHECK(regoSprintf("%g|%g|%G|%.3g", {num(0.000012345), num(2.5), num(1e-7), num(1234.5678)}) ==
          "1.2345e-05|2.5|1E-07|1.23e+03");
    CHECK(regoSprintf("%8.3f|%-8.2f|%08.3f|%+.1f",
                      {num(3.14159), num(2.5), num(-3.14159), num(2.25)}) ==
          "   3.142|2.50    |-003.142|+2.2");
    CHECK(regoSprintf("%v", {num(1e-7)}) == "1e-07");
}

TEST_CASE("sprintf: %t %x %X %q on strings, and Go's errors for mismatched verbs") {
    CHECK(regoSprintf("%q|%x|% X", {str("a\"b\n"), str("hi"), str("hi")}) ==
          "\"a\\\"b\\n\"|6869|68 69");
    CHECK(regoSprintf("%.2s|%5s|%-5s|", {str("héllo"), str("ab"), str("ab")}) == "hé|   ab|ab   |");
    // OPA hands Go an int for integers and the Rego text (a string) for booleans.
    CHECK(regoSprintf("%s", {num(5)}) == "%!s(int=5)");
    CHECK(regoSprintf("%t", {Value::boolean(true)}) == "%!t(string=true)");
    CHECK(regoSprintf("%d", {str("x")}) == "%!d(string=x)");
    CHECK(regoSprintf("%f", {num(5)}) == "%!f(int=5)");
    CHECK(regoSprintf("%.2f", {num(5)}) == "%!f(int=05)");  // Go applies the flags to the value
    CHECK(regoSprintf("%d %d", {num(1)}) == "1 %!d(MISSING)");
    CHECK(regoSprintf("%d", {num(1), str("a")}) == "1%!(EXTRA string=a)");
    CHECK(regoSprintf("100%%", {}) == "100%");
    CHECK(regoSprintf("%[2]d %[1]d", {num(1), num(2)}) == "2 1");
    CHECK(regoSprintf("%*d|%", {num(4), num(7)}) == "   7|%!(NOVERB)");
    CHECK(regoSprintf("%T %T %T", {num(1), num(1.5), str("s")}) == "int float64 string");
}

TEST_CASE("sprintf: integers beyond int64 print as big integers") {
    CHECK(regoSprintf("%d", {num(1e20)}) == "100000000000000000000");
    CHECK(regoSprintf("%s", {num(1e20)}) == "100000000000000000000");
    CHECK(regoSprintf("%x", {num(18446744073709551616.0)}) == "10000000000000000");
}

TEST_CASE("sprintf: the operand must be an array") {
    CHECK(failure(PolicyErrc::kTypeError, "sprintf", {str("%d"), num(1)}) ==
          "sprintf: operand 2 must be array but got number");
}

TEST_CASE("strings.render_template: fields, range with variables, if/else and missing keys") {
    auto render = [](const char* tmpl, Value vars) {
        const Value v = eval("strings.render_template", {str(tmpl), std::move(vars)});
        REQUIRE(v.isString());
        return v.asString();
    };
    CHECK(render("{{.test}}", Value::object({{str("test"), str("hello world")}})) == "hello world");
    CHECK(render("{{.test}}", Value::object({{str("test"), num(2023)}})) == "2023");
    CHECK(render("{{range $i, $name := .names}}{{if $i}},{{end}}hello {{$name}}{{end}}",
                 Value::object({{str("names"), strs({"rohan", "john doe"})}})) ==
          "hello rohan,hello john doe");
    CHECK(render("test {{.foo}} {{.bar}} {{.baz}}", Value::object({{str("baz"), num(1)}})) ==
          "test <undefined> <undefined> 1");
    CHECK(render("{{if .a}}yes{{else if .b}}b{{else}}no{{end}}",
                 Value::object({{str("b"), Value::boolean(true)}})) == "b");
    CHECK(render("{{range .xs}}[{{.}}]{{else}}empty{{end}}",
                 Value::object({{str("xs"), Value::emptyArray()}})) == "empty");
    CHECK(render("a  {{- .x -}}  b {{/* note */}}{{with .o}}{{.k}}{{end}}",
                 Value::object({{str("x"), str("X")},
                                {str("o"), Value::object({{str("k"), str("v")}})}})) == "aXb v");
    CHECK(render("{{.l}} {{.m}} {{len .l}} {{index .l 1}} {{if eq .n 3}}three{{end}}",
                 Value::object({{str("l"), strs({"a", "b"})},
                                {str("m"), Value::object({{str("k"), num(1)}})},
                                {str("n"), num(3)}})) == "[a b] map[k:1] 2 b three");
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "strings.render_template",
                       {str("{{if .a}}"), Value::emptyObject()}),
               Catch::Contains("unexpected EOF"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "strings.render_template",
                       {str("{{foo .a}}"), Value::emptyObject()}),
               Catch::Contains("function \"foo\" not defined"));
}

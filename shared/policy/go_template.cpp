#include "shared/policy/go_template.hpp"

#include <charconv>
#include <optional>
#include <vector>

#include "shared/policy/errors.hpp"
#include "shared/policy/go_strings.hpp"

namespace edge::policy::detail {
namespace {

constexpr std::size_t kMaxOutput = 16u << 20;
constexpr std::size_t kMaxSteps = 10'000'000;

using Maybe = std::optional<Value>;  // nullopt: a missing map key ("<undefined>")

std::unexpected<Error> templateError(int line, std::string_view message) {
    return fail(PolicyErrc::kBuiltinError,
                "template: template:" + std::to_string(line) + ": " + std::string(message));
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool isIdent(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// ---- lexing: text and actions ---------------------------------------------------------------

struct Item {
    bool action = false;
    std::string text;
    int line = 1;
};

Result<std::vector<Item>> splitItems(std::string_view t) {
    std::vector<Item> items;
    std::size_t pos = 0;
    int line = 1;
    auto count_lines = [&](std::string_view s) {
        for (char c : s) line += c == '\n' ? 1 : 0;
    };
    while (pos < t.size()) {
        const auto open = t.find("{{", pos);
        std::string text(
            t.substr(pos, open == std::string_view::npos ? t.size() - pos : open - pos));
        count_lines(text);
        if (open == std::string_view::npos) {
            items.push_back({false, std::move(text), line});
            break;
        }
        std::size_t p = open + 2;
        if (p + 1 < t.size() && t[p] == '-' && isSpace(t[p + 1])) {
            while (!text.empty() && isSpace(text.back())) text.pop_back();
            p += 2;
        }
        if (!text.empty()) items.push_back({false, std::move(text), line});
        std::size_t q = p;
        char quote = 0;
        for (; q < t.size(); ++q) {
            if (quote != 0) {
                if (t[q] == '\\' && quote != '`') {
                    ++q;
                } else if (t[q] == quote) {
                    quote = 0;
                }
            } else if (t[q] == '"' || t[q] == '`' || t[q] == '\'') {
                quote = t[q];
            } else if (t.substr(q).starts_with("}}")) {
                break;
            }
        }
        if (q >= t.size()) return templateError(line, "unclosed action");
        std::size_t end = q;
        const bool trim_right = q >= p + 2 && t[q - 1] == '-' && isSpace(t[q - 2]);
        if (trim_right) end = q - 2;
        std::string_view content = t.substr(p, end - p);
        count_lines(t.substr(open, q + 2 - open));
        while (!content.empty() && isSpace(content.front())) content.remove_prefix(1);
        while (!content.empty() && isSpace(content.back())) content.remove_suffix(1);
        if (!content.starts_with("/*")) items.push_back({true, std::string(content), line});
        pos = q + 2;
        if (trim_right) {
            while (pos < t.size() && isSpace(t[pos])) line += t[pos++] == '\n' ? 1 : 0;
        }
    }
    return items;
}

// ---- parsing: pipelines and the node tree --------------------------------------------------

struct Operand {
    enum class Kind { kDot, kField, kVar, kLiteral, kIdent } kind = Kind::kDot;
    std::string name;                // variable (with '$') or function name
    std::vector<std::string> chain;  // .a.b after dot, a variable or nothing
    Value literal;
};

struct Pipeline {
    std::vector<std::string> decls;  // "$x" or "$i", "$v"
    std::vector<Operand> command;
};

struct Node {
    enum class Kind { kText, kPrint, kIf, kRange, kWith } kind = Kind::kText;
    std::string text;
    Pipeline pipe;
    std::vector<Node> body;
    std::vector<Node> else_body;
    int line = 1;
};

std::vector<std::string> fieldChain(std::string_view s, std::size_t& i) {
    std::vector<std::string> chain;
    while (i < s.size() && s[i] == '.' && i + 1 < s.size() && isIdent(s[i + 1])) {
        std::size_t j = i + 1;
        while (j < s.size() && isIdent(s[j])) ++j;
        chain.emplace_back(s.substr(i + 1, j - i - 1));
        i = j;
    }
    return chain;
}

Result<Pipeline> parsePipeline(std::string_view s, int line) {
    Pipeline pipe;
    std::size_t i = 0;
    // Declarations: $a[, $b] := …
    const auto assign = s.find(":=");
    if (!s.empty() && s[0] == '$' && assign != std::string_view::npos) {
        std::string_view vars = s.substr(0, assign);
        std::size_t start = 0;
        while (start < vars.size()) {
            auto comma = vars.find(',', start);
            std::string_view v = vars.substr(
                start, comma == std::string_view::npos ? vars.size() - start : comma - start);
            while (!v.empty() && isSpace(v.front())) v.remove_prefix(1);
            while (!v.empty() && isSpace(v.back())) v.remove_suffix(1);
            if (v.empty() || v[0] != '$') return templateError(line, "bad variable declaration");
            pipe.decls.emplace_back(v);
            if (comma == std::string_view::npos) break;
            start = comma + 1;
        }
        i = assign + 2;
    }
    while (i < s.size()) {
        const char c = s[i];
        if (isSpace(c)) {
            ++i;
            continue;
        }
        Operand op;
        if (c == '.') {
            auto chain = fieldChain(s, i);
            if (chain.empty()) ++i;
            op.kind = chain.empty() ? Operand::Kind::kDot : Operand::Kind::kField;
            op.chain = std::move(chain);
        } else if (c == '$') {
            std::size_t j = i + 1;
            while (j < s.size() && isIdent(s[j])) ++j;
            op.kind = Operand::Kind::kVar;
            op.name = std::string(s.substr(i, j - i));
            i = j;
            op.chain = fieldChain(s, i);
        } else if (c == '"' || c == '`') {
            std::size_t j = i + 1;
            std::string value;
            for (; j < s.size() && s[j] != c; ++j) {
                if (c == '"' && s[j] == '\\' && j + 1 < s.size()) {
                    const char e = s[++j];
                    value += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                } else {
                    value += s[j];
                }
            }
            if (j >= s.size()) return templateError(line, "unterminated quoted string");
            i = j + 1;
            op.kind = Operand::Kind::kLiteral;
            op.literal = Value::string(std::move(value));
        } else if ((c >= '0' && c <= '9') || c == '-' || c == '+') {
            std::size_t j = i + 1;
            while (j < s.size() && !isSpace(s[j])) ++j;
            auto parsed = parseJson(s.substr(i, j - i));
            if (!parsed || !parsed->isNumber())
                return templateError(line, "bad number syntax: " + std::string(s.substr(i, j - i)));
            op.kind = Operand::Kind::kLiteral;
            op.literal = *parsed;
            i = j;
        } else if (isIdent(c)) {
            std::size_t j = i;
            while (j < s.size() && isIdent(s[j])) ++j;
            const std::string word(s.substr(i, j - i));
            i = j;
            op.kind = Operand::Kind::kLiteral;
            if (word == "true" || word == "false") {
                op.literal = Value::boolean(word == "true");
            } else if (word == "nil") {
                op.literal = Value::null();
            } else {
                op.kind = Operand::Kind::kIdent;
                op.name = word;
            }
        } else {
            return templateError(line, "unexpected \"" + std::string(1, c) + "\" in command");
        }
        pipe.command.push_back(std::move(op));
    }
    if (pipe.command.empty()) return templateError(line, "missing value for command");
    return pipe;
}

enum class End { kEof, kEnd, kElse };

struct Parser {
    const std::vector<Item>& items;
    std::size_t next = 0;

    // Parses nodes up to {{end}}, {{else …}} or the end of input; `rest` gets the else's tail.
    Result<std::vector<Node>> list(End& end, std::string& rest) {
        std::vector<Node> nodes;
        while (next < items.size()) {
            const Item& item = items[next++];
            if (!item.action) {
                nodes.push_back(Node{Node::Kind::kText, item.text, {}, {}, {}, item.line});
                continue;
            }
            std::string_view content = item.text;
            const auto word_end = std::min(content.find_first_of(" \t\r\n"), content.size());
            const std::string_view word = content.substr(0, word_end);
            std::string_view tail = content.substr(word_end);
            while (!tail.empty() && isSpace(tail.front())) tail.remove_prefix(1);
            if (word == "end" || word == "else") {
                end = word == "end" ? End::kEnd : End::kElse;
                rest = std::string(tail);
                return nodes;
            }
            if (word == "if" || word == "range" || word == "with") {
                auto node = control(word, tail, item.line);
                if (!node) return fail(node.error());
                nodes.push_back(std::move(*node));
                continue;
            }
            if (word == "define" || word == "template" || word == "block" || word == "break" ||
                word == "continue") {
                return templateError(item.line, "{{" + std::string(word) + "}} is not supported");
            }
            auto pipe = parsePipeline(content, item.line);
            if (!pipe) return fail(pipe.error());
            nodes.push_back(Node{Node::Kind::kPrint, {}, std::move(*pipe), {}, {}, item.line});
        }
        end = End::kEof;
        return nodes;
    }

    Result<Node> control(std::string_view word, std::string_view tail, int line) {
        Node node;
        node.kind = word == "if"      ? Node::Kind::kIf
                    : word == "range" ? Node::Kind::kRange
                                      : Node::Kind::kWith;
        node.line = line;
        auto pipe = parsePipeline(tail, line);
        if (!pipe) return fail(pipe.error());
        node.pipe = std::move(*pipe);
        End end = End::kEof;
        std::string rest;
        auto body = list(end, rest);
        if (!body) return fail(body.error());
        node.body = std::move(*body);
        if (end == End::kElse) {
            const std::string nested_prefix = std::string(word) + " ";
            if (node.kind != Node::Kind::kRange && rest.starts_with(nested_prefix)) {
                // {{else if …}} / {{else with …}}: a nested node that consumes the {{end}}.
                auto nested =
                    control(word, std::string_view(rest).substr(nested_prefix.size()), line);
                if (!nested) return fail(nested.error());
                node.else_body.push_back(std::move(*nested));
                return node;
            }
            if (!rest.empty()) return templateError(line, "unexpected \"" + rest + "\" in else");
            auto else_body = list(end, rest);
            if (!else_body) return fail(else_body.error());
            node.else_body = std::move(*else_body);
        }
        if (end != End::kEnd) return templateError(line, "unexpected EOF");
        return node;
    }
};

// ---- execution ---------------------------------------------------------------------------

bool truth(const Maybe& v) {
    if (!v) return false;
    switch (v->kind()) {
        case Kind::kNull:
            return false;
        case Kind::kBool:
            return v->asBool();
        case Kind::kNumber:
            return v->asNumber().asDouble() != 0;
        case Kind::kString:
            return !v->asString().empty();
        case Kind::kArray:
            return !v->asArray().empty();
        case Kind::kObject:
            return !v->asObject().empty();
        case Kind::kSet:
            return !v->asSet().empty();
    }
    return false;
}

void printValue(std::string& out, const Maybe& v, bool nested) {
    if (!v) {
        out += "<undefined>";
        return;
    }
    switch (v->kind()) {
        case Kind::kNull:
            out += nested ? "<nil>" : "<no value>";
            return;
        case Kind::kBool:
            out += v->asBool() ? "true" : "false";
            return;
        case Kind::kNumber:
            out += formatNumber(v->asNumber());
            return;
        case Kind::kString:
            out += v->asString();
            return;
        case Kind::kArray:
        case Kind::kSet: {
            out += '[';
            bool first = true;
            auto item = [&](const Value& e) {
                if (!first) out += ' ';
                first = false;
                printValue(out, e, true);
            };
            if (v->isArray()) {
                for (const auto& e : v->asArray()) item(e);
            } else {
                for (const auto& e : v->asSet()) item(e);
            }
            out += ']';
            return;
        }
        case Kind::kObject: {
            out += "map[";
            bool first = true;
            for (const auto& [k, e] : v->asObject()) {
                if (!first) out += ' ';
                first = false;
                printValue(out, k, true);
                out += ':';
                printValue(out, e, true);
            }
            out += ']';
            return;
        }
    }
}

class Executor {
public:
    explicit Executor(const Value& data) { vars_.emplace_back("$", data); }

    Status run(const std::vector<Node>& nodes, const Maybe& dot) {
        for (const auto& node : nodes) {
            if (++steps_ > kMaxSteps || out_.size() > kMaxOutput) {
                return templateError(node.line, "template too expensive to render");
            }
            auto st = runNode(node, dot);
            if (!st) return st;
        }
        return {};
    }

    std::string take() { return std::move(out_); }

private:
    Status runNode(const Node& node, const Maybe& dot) {
        if (node.kind == Node::Kind::kText) {
            out_ += node.text;
            return {};
        }
        auto value = eval(node.pipe, dot, node.line);
        if (!value) return fail(value.error());
        const std::size_t mark = vars_.size();
        switch (node.kind) {
            case Node::Kind::kPrint:
                if (node.pipe.decls.empty()) {
                    printValue(out_, *value, false);
                } else {
                    vars_.emplace_back(node.pipe.decls.front(), *value);
                }
                return {};  // declarations stay visible to the rest of the enclosing block
            case Node::Kind::kIf:
            case Node::Kind::kWith: {
                if (!node.pipe.decls.empty()) vars_.emplace_back(node.pipe.decls.front(), *value);
                const bool yes = truth(*value);
                const Maybe& inner = node.kind == Node::Kind::kWith && yes ? *value : dot;
                auto st = run(yes ? node.body : node.else_body, inner);
                vars_.resize(mark);
                return st;
            }
            case Node::Kind::kRange: {
                auto st = range(node, *value, dot);
                vars_.resize(mark);
                return st;
            }
            default:
                return {};
        }
    }

    Status range(const Node& node, const Maybe& over, const Maybe& dot) {
        const std::size_t mark = vars_.size();
        auto iteration = [&](const Value& key, const Value& elem) -> Status {
            vars_.resize(mark);
            const auto& decls = node.pipe.decls;
            if (decls.size() == 1) vars_.emplace_back(decls[0], elem);
            if (decls.size() >= 2) {
                vars_.emplace_back(decls[0], key);
                vars_.emplace_back(decls[1], elem);
            }
            return run(node.body, elem);
        };
        if (!truth(over)) return run(node.else_body, dot);
        if (over->isArray() || over->isSet()) {
            std::int64_t i = 0;
            const Array items = over->isArray() ? over->asArray()
                                                : Array(over->asSet().begin(), over->asSet().end());
            for (const auto& e : items) {
                auto st = iteration(Value::number(i++), e);
                if (!st) return st;
            }
            return {};
        }
        if (over->isObject()) {
            for (const auto& [k, e] : over->asObject()) {
                auto st = iteration(k, e);
                if (!st) return st;
            }
            return {};
        }
        return templateError(node.line, "range can't iterate over " + over->toRego());
    }

    static Maybe field(Maybe v, const std::vector<std::string>& chain) {
        for (const auto& name : chain) {
            if (!v || !v->isObject()) return std::nullopt;
            const Value* e = v->get(Value::string(name));
            if (e == nullptr) return std::nullopt;
            v = *e;
        }
        return v;
    }

    Result<Maybe> operand(const Operand& op, const Maybe& dot, int line) {
        switch (op.kind) {
            case Operand::Kind::kDot:
                return dot;
            case Operand::Kind::kField:
                return field(dot, op.chain);
            case Operand::Kind::kLiteral:
                return Maybe(op.literal);
            case Operand::Kind::kVar:
                for (auto it = vars_.rbegin(); it != vars_.rend(); ++it) {
                    if (it->first == op.name) return field(it->second, op.chain);
                }
                return templateError(line, "undefined variable: " + op.name);
            case Operand::Kind::kIdent:
                break;
        }
        return templateError(line, "function \"" + op.name + "\" not defined");
    }

    Result<Maybe> eval(const Pipeline& pipe, const Maybe& dot, int line) {
        const auto& cmd = pipe.command;
        std::vector<Maybe> args;
        for (std::size_t k = cmd.front().kind == Operand::Kind::kIdent ? 1 : 0; k < cmd.size();
             ++k) {
            auto v = operand(cmd[k], dot, line);
            if (!v) return v;
            args.push_back(std::move(*v));
        }
        if (cmd.front().kind != Operand::Kind::kIdent) {
            if (args.size() != 1) return templateError(line, "can't give argument to non-function");
            return args.front();
        }
        const std::string& fn = cmd.front().name;
        auto need = [&](std::size_t n) { return args.size() >= n; };
        if (fn == "not" && args.size() == 1) return Maybe(Value::boolean(!truth(args[0])));
        if ((fn == "and" || fn == "or") && need(1)) {
            for (const auto& a : args) {
                if (truth(a) == (fn == "or")) return a;
            }
            return args.back();
        }
        if ((fn == "eq" || fn == "ne") && need(2)) {
            bool eq = false;
            for (std::size_t k = 1; k < args.size(); ++k) eq = eq || args[0] == args[k];
            return Maybe(Value::boolean(fn == "eq" ? eq : !eq));
        }
        if (fn == "len" && args.size() == 1 && args[0]) {
            const Value& v = *args[0];
            if (v.isString())
                return Maybe(Value::number(static_cast<std::int64_t>(v.asString().size())));
            if (v.isArray() || v.isObject() || v.isSet())
                return Maybe(Value::number(static_cast<std::int64_t>(v.size())));
            return templateError(line,
                                 "error calling len: len of type " + std::string(v.typeName()));
        }
        if (fn == "index" && need(1)) {
            Maybe v = args[0];
            for (std::size_t k = 1; k < args.size() && v; ++k) {
                const Value* e =
                    (args[k] && (v->isArray() || v->isObject())) ? v->get(*args[k]) : nullptr;
                if (e == nullptr && v->isArray())
                    return templateError(line, "error calling index: index out of range");
                v = e == nullptr ? Maybe() : Maybe(*e);
            }
            return v;
        }
        return templateError(line,
                             "function \"" + fn + "\" not defined or wrong number of arguments");
    }

    std::vector<std::pair<std::string, Maybe>> vars_;
    std::string out_;
    std::size_t steps_ = 0;
};

}  // namespace

Result<std::string> renderGoTemplate(std::string_view tmpl, const Value& data) {
    auto items = splitItems(tmpl);
    if (!items) return fail(items.error());
    Parser parser{*items};
    End end = End::kEof;
    std::string rest;
    auto nodes = parser.list(end, rest);
    if (!nodes) return fail(nodes.error());
    if (end != End::kEof)
        return templateError(
            1, "unexpected {{" + std::string(end == End::kEnd ? "end" : "else") + "}}");
    Executor exec(data);
    auto st = exec.run(*nodes, data);
    if (!st) return fail(st.error());
    return exec.take();
}

}  // namespace edge::policy::detail

// Parses the subset of Jinja that the chat templates of SmolLM2, LLaMA-3, Qwen2 and Mistral use
// (and what neighbouring templates commonly add):
//   statements   {% if %}/{% elif %}/{% else %}/{% endif %}, {% for a[, b] in x [if c] %} with
//                {% else %} and loop.index/index0/revindex/revindex0/first/last/length/
//                previtem/nextitem, {% break %}/{% continue %}, {% set x = e %},
//                {% set ns.attr = e %}, comments, whitespace control (text/jinja_lex.h)
//   expressions  literals (strings with Python escapes, integers, floats, true/false/none in
//                either case, lists, tuples, dicts), names, a.b, a[b], a[b:c:d], calls,
//                filters a|f(args), tests `a is [not] t`, `x if c else y`, and/or/not,
//                == != < <= > >= in `not in`, + - * / // % ** ~, unary - +
// Which filters, tests, functions and methods exist is the evaluator's business
// (text/jinja_eval.h). Everything else (macros, call blocks, block set, include/import/extends,
// `{% generation %}`, raw, filter blocks, with, recursive loops, *args) is refused with the
// construct and its line and column. Nesting deeper than kMaxDepth, and tags of more than
// kMaxParts expression nodes, are refused, so untrusted templates cannot exhaust the stack.
#pragma once

#include <string>
#include <string_view>

#include "text/jinja_ast.h"

namespace lomo::text::jinja {

constexpr int kMaxDepth = 200;
constexpr int kMaxParts = 1000;  // expression nodes in one tag

// Throws lomo::Error "<where> line L, column C: ..." naming what is wrong or unsupported.
Template parse(std::string_view source, const std::string& where);

}  // namespace lomo::text::jinja

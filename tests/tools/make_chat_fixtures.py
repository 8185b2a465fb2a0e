#!/usr/bin/env python3
"""Writes tests/fixtures/chat/chat_reference.json: chat templates rendered by transformers.

Reference: transformers' `apply_chat_template` (4.45.2, with jinja2), the very code that
fine-tuning and serving stacks use. Needs only pip's `transformers`, `jinja2`, `sentencepiece` and
`protobuf` (no torch): `python3 -m venv V && V/bin/pip install transformers==4.45.2 jinja2
sentencepiece protobuf && V/bin/python tests/tools/make_chat_fixtures.py`.

1. The chat templates of four model families, copied verbatim (model data, their source noted in
   the fixture), rendered for a set of conversations with and without the generation prompt:
   the string (tokenize=False) and, with the family's tokenizer from tests/fixtures/tokenizers/,
   the ids (tokenize=True). A conversation a template refuses (raise_exception) is recorded with
   its message.
2. The assistant-only loss mask of each conversation, computed here from the tokenizer's
   character offsets (return_offsets_mapping), independently of how the C++ finds it: a token
   carries loss when its characters overlap an assistant turn's span, i.e. the text the template
   adds for that message (render(messages[:i+1]) minus render(messages[:i], generation prompt)),
   without the whitespace the template writes after the end-of-turn marker.
3. Small templates exercising each construct of the supported Jinja subset, rendered by the same
   jinja2 environment transformers builds, or the fact that jinja2 raises.
"""
import json
import os

from transformers import LlamaTokenizer, PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import _compile_jinja_template

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(FIX, "chat")

TEMPLATES = {
    "smollm2": {
        "source": "SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch_model.sh), GGUF metadata "
                  "tokenizer.chat_template (the same as HuggingFaceTB/SmolLM2-135M-Instruct "
                  "tokenizer_config.json)",
        "tokenizer": "smollm", "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
        "template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    },
    "llama3": {
        "source": "meta-llama/Meta-Llama-3-70B-Instruct tokenizer_config.json at revision "
                  "a5a71a7527eac1d651bb145436c72026887fb68e (quoted in "
                  "GoogleCloudPlatform/vertex-ai-samples; identical in Meta-Llama-3-8B-Instruct)",
        "tokenizer": "llama3", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "template": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    },
    "qwen2": {
        "source": "Qwen/Qwen2-7B-Instruct and Qwen2-72B-Instruct tokenizer_config.json (quoted "
                  "in several public repositories, e.g. arcee-ai DistillKit's config)",
        "tokenizer": "qwen2", "bos_token": None, "eos_token": "<|im_end|>",
        "template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    },
    "mistral": {
        "source": "mistralai/Mistral-7B-Instruct-v0.2 tokenizer_config.json, the v1 template "
                  "with an optional system message (quoted in ggerganov/llama.cpp "
                  "tests/test-chat-template.cpp)",
        "tokenizer": "sp", "bos_token": "<s>", "eos_token": "</s>",
        "template": "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n",
    },
    "mistral_v01": {
        "source": "mistralai/Mistral-7B-Instruct-v0.1/v0.2 tokenizer_config.json, the original "
                  "template without a system message (quoted in ggerganov/llama.cpp "
                  "tests/test-chat-template.cpp)",
        "tokenizer": "sp", "bos_token": "<s>", "eos_token": "</s>",
        "template": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    },
}

S, U, A = "system", "user", "assistant"
CONVERSATIONS = [
    [(S, "You are a terse assistant."), (U, "What is 2+2?"), (A, "4")],
    [(U, "Hi there!"), (A, "Hello! How can I help?"), (U, "Tell me a joke."),
     (A, "Why did the chicken cross the road? To get to the other side.")],
    [(S, "Answer in French."), (U, "Good morning"), (A, "Bonjour"), (U, "Thank you"),
     (A, "Merci beaucoup !")],
    [(U, "  Unicode: caf\u00e9, \u6771\u4eac, \U0001F600 and a tab\there.  "),
     (A, "\u3000Ol\u00e1!\nSecond line with \"quotes\" and 'apostrophes'.\n\n")],
    [(S, "You are helpful."), (U, "Write one word.")],
    [(U, "Only a question")],
    [(U, "Two"), (U, "users in a row")],
    [(A, "An assistant first")],
]

SUBSET = [
    ("{{ 'a' ~ 1 ~ none ~ true }}|{{ 1 + 2 * 3 }}|{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }}", {}),
    ("{{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 1e20 }} {{ 0.1 }} {{ 3.0 }}", {}),
    ("{{ x | trim }}|{{ x | length }}|{{ x.strip() }}|{{ x.lstrip() }}|{{ x.rstrip() }}|", {"x": "  h\u00e9llo \u3000"}),
    ("{{ [1, 'a', none, true, 2.5] }} {{ {'k': 'v', 'n': [1]} }} {{ 'it\\'s' }} {{ (1, 2) }}", {}),
    ("{{ d | tojson }} {{ d | tojson(indent=2) }} {{ 'x\"\\n\u00e9' | tojson }}", {"d": {"a": [1, 2.5, None, True], "b": {"c": "\u00e9<>&'"}, "e": []}}),
    ("{% for m in ms %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}:{{ m }};{% endfor %}", {"ms": ["a", "b", "c"]}),
    ("{% for m in ms if m != 'b' %}{{ loop.index }}{{ m }}{{ loop.previtem }}{{ loop.nextitem }}{% else %}none{% endfor %}|{% for x in [] %}{% else %}empty{% endfor %}", {"ms": ["a", "b", "c"]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for c in 'h\u00e9' %}[{{ c }}]{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}{{ range(2, 9, 3) | list }}", {}),
    ("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(found=false, n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}", {}),
    ("{% if a is defined %}A{% elif b is not none %}B{% else %}C{% endif %}{{ c is defined }}{{ none is none }}{{ 'x' is string }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 1 is number }}{{ {} is mapping }}", {"b": 1}),
    ("{{ 'a' in 'cat' }}{{ 'z' not in 'cat' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 'a' < 'b' }}{{ [1, 2] == [1, 2] }}{{ 1 == 1.0 }}", {}),
    ("{{ ms[1:] }}{{ ms[:-1] }}{{ ms[::-1] }}{{ ms[-1] }}{{ ms[5] }}|{{ 'h\u00e9llo'[1:3] }}{{ 'abc'[-1] }}{{ ms | first }}{{ ms | last }}{{ ms | join('-') }}{{ ms | reverse | list }}", {"ms": ["a", "b", "c"]}),
    ("{{ x | default('d') }}{{ '' | default('e', true) }}{{ y.z }}{{ y['z'] }}{{ y.get('z', 'g') }}{{ y.get('q') }}|{{ 'Ab Cd' | lower }}{{ 'ab' | upper }}{{ 'hello world' | title }}{{ 'hELLO' | capitalize }}", {"y": {"z": 1}}),
    ("{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'aXbX'.replace('X', '-') }}{{ 'aaa' | replace('a', 'b', 2) }}{{ '3' | int + 1 }}{{ -3 | abs }}", {}),
    ("{{ 'yes' if x else 'no' }}{{ 'y2' if not x }}{{ x and 'and' or 'or' }}{{ none or 0 or 'last' }}{{ [] and 1 }}", {"x": 0}),
    ("  {% if true %}\n    kept\n  {% endif %}\n  {%+ if true %}plus{% endif %}\n{# comment #}\nline\n  {{ 'var' }}  \n{%- if true -%}\n   trimmed   \n{%- endif %}\nend\n", {}),
    ("a\r\nb {%- if true %} c {% endif -%} d\r\n\r\n", {}),
    ("{{ \"double\" 'adjacent' }}{{ '\\u00e9\\x41\\t\\\\' }}{{ '\\d' }}{# multi\nline #}{{ 1_000 }}", {}),
    ("{% if x %}{{ raise_exception('boom: ' ~ x) }}{% endif %}", {"x": "bad"}),
    ("{{ undefined_name.attr }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ 1 // 0 }}", {}),
    ("{% macro m() %}x{% endmacro %}", {}),
]


def tokenizer_for(name, bos, eos):
    d = os.path.join(FIX, "tokenizers", name)
    if name == "sp":
        return LlamaTokenizer(vocab_file=os.path.join(d, "tokenizer.model"), legacy=True,
                              add_bos_token=False, add_eos_token=False)
    kw = {"eos_token": eos}
    if bos:
        kw["bos_token"] = bos
    return PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), **kw)


def char_to_byte(s):
    """Byte offset of each character index (and of len(s))."""
    out, b = [], 0
    for ch in s:
        out.append(b)
        b += len(ch.encode("utf-8"))
    out.append(b)
    return out


def assistant_spans(tok, tmpl, msgs):
    """Character spans of the assistant turns in the full render, trailing whitespace removed."""
    full = tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=False)
    spans = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before = tok.apply_chat_template(msgs[:i], chat_template=tmpl, tokenize=False,
                                         add_generation_prompt=True) if i else ""
        upto = tok.apply_chat_template(msgs[:i + 1], chat_template=tmpl, tokenize=False)
        assert full.startswith(upto) and upto.startswith(before), (msgs, i)
        end = len(before) + len(upto[len(before):].rstrip())
        spans.append((len(before), end))
    return full, spans


def loss_mask(tok, tmpl, msgs, ids):
    full, spans = assistant_spans(tok, tmpl, msgs)
    if isinstance(tok, PreTrainedTokenizerFast):
        enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
        assert enc["input_ids"] == ids
        offsets = enc["offset_mapping"]
    else:
        # The slow SentencePiece tokenizer has no offsets: no reference mask here (the C++ test
        # ChatData.MistralLossIsTheAnswerAndEos checks Mistral's loss by its pieces instead).
        return None
    return [1 if any(s < e2 and s2 < e for (s2, e2) in spans) else 0 for (s, e) in offsets]


def main():
    os.makedirs(OUT, exist_ok=True)
    env_render = lambda t, v: _compile_jinja_template(t).render(**v)
    out = {"generator": "tests/tools/make_chat_fixtures.py, transformers 4.45.2 + jinja2 "
                        + __import__("jinja2").__version__,
           "templates": {}, "cases": [], "subset": []}
    for name, t in TEMPLATES.items():
        out["templates"][name] = {k: t[k] for k in ("source", "template", "bos_token", "eos_token", "tokenizer")}
        tok = tokenizer_for(t["tokenizer"], t["bos_token"], t["eos_token"])
        for ci, conv in enumerate(CONVERSATIONS):
            msgs = [{"role": r, "content": c} for r, c in conv]
            for gen in (False, True):
                case = {"template": name, "conversation": ci, "add_generation_prompt": gen}
                try:
                    case["text"] = tok.apply_chat_template(msgs, chat_template=t["template"], tokenize=False,
                                                           add_generation_prompt=gen)
                    case["ids"] = tok.apply_chat_template(msgs, chat_template=t["template"], tokenize=True,
                                                          add_generation_prompt=gen)
                    if not gen and any(m["role"] == "assistant" for m in msgs):
                        mask = loss_mask(tok, t["template"], msgs, case["ids"])
                        if mask is not None:
                            case["assistant_mask"] = mask
                except Exception as e:  # the template refuses the conversation
                    case["error"] = str(e)
                out["cases"].append(case)
    out["conversations"] = [[{"role": r, "content": c} for r, c in conv] for conv in CONVERSATIONS]
    for tmpl, v in SUBSET:
        case = {"template": tmpl, "vars": v}
        try:
            case["expected"] = env_render(tmpl, v)
        except Exception as e:
            case["error"] = type(e).__name__ + ": " + str(e)
        out["subset"].append(case)
    with open(os.path.join(OUT, "chat_reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n = len(out["cases"])
    print(f"{n} conversation renders, {sum('error' in c for c in out['cases'])} refused, "
          f"{sum('assistant_mask' in c for c in out['cases'])} masks, {len(out['subset'])} subset cases")


if __name__ == "__main__":
    main()

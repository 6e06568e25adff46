#!/usr/bin/env python3
"""Writes expected.json: every fixture template (*/tokenizer_config.json) applied
to every conversation of conversations.json, with add_generation_prompt false
and true, as transformers' apply_chat_template(tokenize=False) renders it.
A template that raises (raise_exception) records the message instead.

  python3 render_expected.py OUT.json [TOKENIZERS_DIR]  # transformers when installed, else jinja2

With transformers the template goes through PreTrainedTokenizerFast built
from the tokenizer fixture named in TOKENIZERS (only the bos/eos strings
matter); without it, jinja2 with the settings transformers documents
(trim_blocks, lstrip_blocks, loopcontrols, raise_exception)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZERS = {"llama3-instruct": "llama3", "qwen2.5-instruct": "qwen2", "mistral-instruct": "llama2-json",
              "zephyr": "llama2-json", "chatml": "gpt2"}


def jinja_renderer():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception

    def render(cfg, name, messages, gen):
        t = env.from_string(cfg["chat_template"])
        # as transformers: tools and documents are None, a special token the
        # tokenizer lacks is not passed at all
        tokens = {k: cfg[k] for k in ("bos_token", "eos_token") if cfg.get(k)}
        return t.render(messages=messages, tools=None, documents=None, add_generation_prompt=gen, **tokens)
    return render, "jinja2 " + jinja2.__version__


def transformers_renderer():
    import transformers
    from transformers import PreTrainedTokenizerFast
    cache = {}

    def render(cfg, name, messages, gen):
        if name not in cache:
            tokenizers = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "tokenizers")
            path = os.path.join(tokenizers, TOKENIZERS[name], "tokenizer.json")
            kw = {k: cfg[k] for k in ("bos_token", "eos_token") if cfg.get(k)}
            tok = PreTrainedTokenizerFast(tokenizer_file=path, **kw)
            tok.chat_template = cfg["chat_template"]
            cache[name] = tok
        return cache[name].apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    return render, "transformers " + transformers.__version__


def main():
    try:
        render, renderer = transformers_renderer()
    except ImportError:
        render, renderer = jinja_renderer()
    convs = json.load(open(os.path.join(HERE, "conversations.json")))["conversations"]
    cases = []
    for name in sorted(TOKENIZERS):
        cfg = json.load(open(os.path.join(HERE, name, "tokenizer_config.json")))
        for c in convs:
            for gen in (False, True):
                case = {"template": name, "conversation": c["name"], "add_generation_prompt": gen}
                try:
                    case["text"] = render(cfg, name, c["messages"], gen)
                except Exception as e:  # raise_exception in the template
                    case["error"] = str(e)
                cases.append(case)
    with open(sys.argv[1], "w") as f:
        json.dump({"renderer": renderer, "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()

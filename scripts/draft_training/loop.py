"""The training loop: data and model set-up, the steps of the phases, checkpoints, resume.

One seed (`SEED`) fixes the model's initialisation and the data stream: the rows come
from one `random.Random` in a fixed order, so a run is reproducible on the same CPU
and thread count. Training is CPU only, 2 threads, bf16 autocast, AdamW (lr 2e-3,
betas 0.9/0.95, weight decay 0.1 on matrices only), gradients clipped at 1.0, the
learning rate of each step from `curriculum.lr_at`.

Running losses are averaged and logged every 10 steps (every step with --smoke) to
OUT/train_log.json, which also records the data, the tokenizer, the model and the
recipe. Every `--ckpt-minutes` and at the end, the model is evaluated
(`evaluation.run_eval`) and saved to OUT/ckpt/step_NNNNN/ as a plain transformers
folder (a fresh LlamaForCausalLM with the trained weights, generation config and
tokenizer), the best by the eval score is copied to OUT/best, and model + optimizer go
to OUT/last_state.pt.

`--resume OUT/last_state.pt` continues from that step: the phases already done are
skipped (their end steps kept in the log), the log keeps its history up to that step,
and the data stream is re-seeded with `SEED + step`: a resumed run is close to an
uninterrupted one, not bit-identical. `--max-minutes` stops the training early, with
the final eval and save.
"""
from __future__ import annotations

import collections
import json
import os
import random
import shutil
import time
from pathlib import Path

import torch

from .corpus import DOCS, STDLIB, Corpus, load_corpus, train_tokenizer, word_list
from .curriculum import FINETUNE_LR, FINETUNE_WARMUP, MIXES, lr_at, make_batch, select_phases
from .evaluation import build_eval, run_eval
from .facts import FactMaker
from .losses import (LM_FRACTION, RETRIEVAL_HEADS, RETRIEVAL_LAYERS, W_ANS, W_ATT, W_COVER,
                     W_NEG, loss_fn, register_probe)
from .rows import DataGen

SEED = 20261122


def new_model(tok):
    """(config, model): the draft's architecture, freshly initialised, with the probe attention."""
    from transformers import LlamaConfig, LlamaForCausalLM
    register_probe()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=8, head_dim=32,
                      max_position_embeddings=1024, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.eos_token_id, initializer_range=0.02)
    model = LlamaForCausalLM(cfg)
    model.set_attn_implementation("probe_sdpa")
    return cfg, model


def save_model(model, cfg, tok, d: Path):
    """The model as a plain transformers folder d, with its tokenizer."""
    from transformers import GenerationConfig, LlamaForCausalLM
    d.mkdir(parents=True, exist_ok=True)
    clean = LlamaForCausalLM(cfg)
    clean.load_state_dict(model.state_dict())
    clean.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.eos_token_id, do_sample=False,
                                               max_new_tokens=8)
    clean.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)


def recipe(phases, decay_frac: float) -> dict:
    """The recipe as recorded in the training log."""
    return {"phases": [dict(zip(["name", "seq", "batch", "steps", "recall_frac", "max_facts", "mix"], p))
                       for p in phases],
            "optimizer": "AdamW lr 2e-3 betas (0.9,0.95) wd 0.1, warmup 100, constant, linear decay "
                         f"to 10% over the last {decay_frac:.0%} of the 'facts' steps, clip 1.0, "
                         f"bf16 autocast; each fine-tune phase: lr {FINETUNE_LR}, warmup {FINETUNE_WARMUP}, "
                         "linear decay to 10%",
            "loss": {"lm_fraction": LM_FRACTION, "w_ans": W_ANS, "w_att": W_ATT, "w_neg": W_NEG,
                     "w_cover": W_COVER, "retrieval_layers": RETRIEVAL_LAYERS,
                     "retrieval_heads": RETRIEVAL_HEADS,
                     "fine_tune_mixes": MIXES}}


def train(args) -> None:
    """Train into args.out (train_draft.py's flags), or continue the run of args.resume."""
    torch.set_num_threads(2)
    random.seed(SEED)
    torch.manual_seed(SEED)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.json"
    # a resumed run continues the log of the interrupted one (read before it is rewritten)
    old_log = json.loads(log_path.read_text()) if (args.resume and log_path.exists()) else {}
    t0 = time.time()
    log = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "seed": SEED, "status": "preparing",
           "history": [], "evals": []}

    def write_log():
        tmp = log_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(log, indent=1))
        os.replace(tmp, log_path)

    docs, code = load_corpus()
    log["data"] = {
        "sources": {"python_stdlib": f"{STDLIB} (*.py, excluding site-packages and test dirs), PSF-2.0",
                    "python_docs": f"{DOCS} (Debian python3-doc reST sources, cleaned), PSF-2.0"},
        "files": {"docs_train": len(docs["train"]), "docs_eval": len(docs["eval"]),
                  "code_train": len(code["train"]), "code_eval": len(code["eval"])},
        "chars": {"docs_train": sum(map(len, docs["train"])), "code_train": sum(map(len, code["train"]))},
    }
    write_log()

    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(tok_dir)
    else:
        tok = train_tokenizer(docs, code, tok_dir)
    sample = "".join(docs["train"][:40])[:400000]
    cpt = len(sample) / len(tok(sample, add_special_tokens=False)["input_ids"])
    log["tokenizer"] = {"vocab": len(tok), "bos": tok.bos_token_id, "eos": tok.eos_token_id,
                        "docs_chars_per_token": round(cpt, 3)}
    words = word_list(docs["train"])
    log["data"]["word_pool"] = len(words)

    cfg, model = new_model(tok)
    nparam = sum(p.numel() for p in model.parameters())
    log["model"] = {"arch": "LlamaForCausalLM", "params": nparam, "layers": 4, "hidden": 256, "heads": 8,
                    "head_dim": 32, "ffn": 688, "max_pos": 1024, "tied": True}
    phases = select_phases(args.steps_scale, args.phase_steps, args.smoke)
    log["recipe"] = recipe(phases, args.decay_frac)

    eval_sets = build_eval(tok, words, Corpus(docs["eval"]), Corpus(code["eval"]), cpt, SEED)
    if args.smoke:
        eval_sets = {k: v[:3] for k, v in eval_sets.items()}
    log["eval_sets"] = {k: len(v) for k, v in eval_sets.items()}

    rng = random.Random(SEED)
    gen = DataGen(tok, Corpus(docs["train"]), Corpus(code["train"]), FactMaker(words, rng), rng, cpt)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=2e-3, betas=(0.9, 0.95), eps=1e-8)

    step, tokens = 0, 0
    best = -1.0
    min_off = 0.0
    if args.resume:
        st = torch.load(args.resume, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        old = old_log
        log["history"] = [h for h in old.get("history", []) if h["step"] <= step]
        log["evals"] = [e for e in old.get("evals", []) if e["step"] <= step]
        log["resumed"] = old.get("resumed", []) + [{"from_step": step, "at": time.strftime("%H:%M:%S"),
                                                      "phases": phases}]
        log["phase_end_steps"] = dict(old.get("phase_end_steps", {}))
        if "best" in old:
            log["best"] = old["best"]
            best = old["best"]["score"]
        tokens = sum(min(max(0, step - sum(p[3] for p in phases[:i])), p[3]) * p[1] * p[2]
                     for i, p in enumerate(phases))
        rng.seed(SEED + step)
        min_off = log["history"][-1]["minutes"] if log["history"] else 0.0
    log["status"] = "training"
    log["prep_seconds"] = round(time.time() - t0, 1)
    write_log()
    last_ckpt = time.time()
    run = collections.defaultdict(float)
    nrun = 0
    t_train = time.time()
    tokens0 = tokens
    stop = False

    def checkpoint(tag):
        nonlocal best, last_ckpt
        te = time.time()
        ev = run_eval(model, tok, eval_sets, cfg.num_hidden_layers)
        ck = out / "ckpt" / f"step_{step:05d}"
        save_model(model, cfg, tok, ck)
        entry = {"step": step, "tokens": tokens, "minutes": round(min_off + (time.time() - t_train) / 60, 2),
                 "eval_seconds": round(time.time() - te, 1), "tag": tag, **ev}
        log["evals"].append(entry)
        if ev["score"] >= best:
            best = ev["score"]
            if (out / "best").exists():
                shutil.rmtree(out / "best")
            shutil.copytree(ck, out / "best")
            log["best"] = {"step": step, "score": best, "dir": str(out / "best")}
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, out / "last_state.pt")
        write_log()
        print(json.dumps(entry), flush=True)
        last_ckpt = time.time()

    if not args.resume:
        checkpoint("init")
    done = 0
    for (pname, T, B, nsteps, p_rec, kmax, mix) in phases:
        trained = False  # a resumed run skips the phases it has done: keep their end steps
        for _ in range(nsteps):
            done += 1
            if done <= step:
                continue
            trained = True
            for g in opt.param_groups:
                g["lr"] = lr_at(step, phases, args.decay_frac)
            batch = make_batch(gen, T, B, p_rec, kmax, mix)
            loss, parts = loss_fn(model, batch, cfg.num_hidden_layers)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            tokens += B * T
            for k, v in parts.items():
                run[k] += v
            run["gnorm"] += float(gn)
            nrun += 1
            if step % 10 == 0 or args.smoke:
                el = time.time() - t_train
                h = {"step": step, "phase": pname, "tokens": tokens, "minutes": round(min_off + el / 60, 2),
                     "tok_per_s": round((tokens - tokens0) / el, 1),
                     "lr": round(lr_at(step, phases, args.decay_frac), 6),
                     **{k: round(v / nrun, 4) for k, v in run.items()}}
                log["history"].append(h)
                run.clear()
                nrun = 0
                if step % 50 == 0 or args.smoke:
                    write_log()
                    print(json.dumps(h), flush=True)
            if time.time() - last_ckpt > args.ckpt_minutes * 60:
                checkpoint("periodic")
            if time.time() - t_train > args.max_minutes * 60:
                stop = True
                break
        if trained:
            log.setdefault("phase_end_steps", {})[pname] = step
        if stop:
            break
    checkpoint("final")
    log["status"] = "done" if not stop else "stopped_by_time"
    log["train_minutes"] = round(min_off + (time.time() - t_train) / 60, 2)
    log["tokens_seen"] = tokens
    log["steps"] = step
    write_log()

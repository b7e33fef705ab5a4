"""Tiny random causal LM for tests: built locally in well under a second, no download.

``build_tiny_model(path)`` writes a folder that ``AutoTokenizer.from_pretrained`` and
``AutoModelForCausalLM.from_pretrained`` load: a byte-level BPE tokenizer (a few hundred tokens,
ChatML special tokens, left padding) with a ChatML chat template carrying ``{% generation %}``
markers, and a randomly initialised 2-layer Llama model (hidden size 64, 4096 positions). The
weights come from a fixed torch seed, so two builds give the same model.
"""

from __future__ import annotations

import pathlib

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]
VOCAB_SIZE = 384
SEED = 1234

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "Step 1: Let x = 3. Then 2x + 5 = 11, so the answer is \\boxed{11}.",
    "Step 2: We compute \\frac{1}{2} + \\frac{3}{4} = \\frac{5}{4}.",
    "Final answer: \\boxed{\\frac{5}{4}}",
    "Step 3: The intervention replaces the incorrect step with a correct one.",
    '{"content": "Use the quadratic formula instead.", "location": 2}',
    '{"intervention": {"content": "Check the sign.", "location": 7}}',
    '[{"step": 1, "text": "x^2 - 4 = 0"}, {"step": 2, "text": "x = \\\\pm 2"}]',
    "Problem: Find the value of \\sqrt{16} + 2^{3}. Solution: 4 + 8 = 12, so \\boxed{12}.",
    "The sum 0 1 2 3 4 5 6 7 8 9 10 100 1000 equals 1155; 3.14159 and -42 are numbers.",
    "Let me think step by step. First, the location of the error is Step 4.",
    "Therefore the answer is \\boxed{(1, 2)} and the content is correct: true, false, null.",
    "Reasoning: a_{n+1} = a_n + d, \\cdot \\times \\le \\ge \\ne \\infty \\pi \\theta.",
    "system user assistant: You are a helpful math assistant. Please reason step by step.",
]


def _train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


def build_tiny_model(path: pathlib.Path, *, heads: int = 4) -> pathlib.Path:
    """Write a tiny random ChatML causal LM (tokenizer + model) to ``path`` and return ``path``.

    Deterministic: the same folder contents (weights included) on every call. ``heads=1`` gives
    one attention head of 64 dimensions: vLLM's CPU attention rejects the default head size, 16.
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        eos_token=IM_END,
        pad_token=PAD,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=4096,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(path)
    return path

"""On-policy diagnostics: how likely SFT data is under the base model, how sharp a model stays.

The paper argues that InT's SFT data is a better start than reference solutions because it is
nearly on-policy: its completions have the lowest per-token negative log-likelihood (NLL) under
the base model, and after SFT the model's next-token entropy stays low (reference-solution SFT
raised it from 0.26 to 1.66 nats; InT kept it at 0.29). Two stages measure this on any model.

``nll`` (:func:`write_nll`): for each source of SFT data, the rows the ``sft_data`` stage would
write, built by that stage's own entry point (:func:`~.sft_data.write_sft_data`, with
``source``/``variant`` set per source and ``end_of_turn`` as ``sft_data`` has it), tokenized by
the ``sft`` stage's own :func:`~.training.sft.tokenize_sft_rows` without an appended eos (no
end-of-turn token unless the data carries it). Scored are exactly the tokens that carry SFT
loss: the completion tokens, each predicted from everything before it. Sources:

* ``prefix_intervention`` (InT), ``intervention_only``: the ``sft_data.variant`` values;
* ``prefix_intervention_suffix``: needs guided continuations with a correct one (the guided
  stage run with ``enabled: true``); otherwise it is skipped, with the reason;
* ``reference``: the worked reference solutions (the paper's Table 4 baseline).

A source with no rows is skipped with the reason too; a run where no source has a row is an
error. A row whose completion encodes to no tokens is skipped, as the trainer skips it.

``entropy@M`` (:func:`write_entropy`): model M teacher-forced on its own evaluation samples
(``data/eval/M.parquet``): each sample's prompt is rebuilt as the ``evaluate`` stage built it
(the problem in the model's own chat template, :func:`~.prompts.rollout_prompt`), the completion
text is encoded and appended, and at every completion position the entropy (nats) of
``softmax(logits)`` at temperature 1, the distribution the completion token was drawn from
(before the evaluation's own temperature and top-p/top-k). The completion text is re-encoded,
so a sample whose generated tokens were not the canonical encoding of its text is scored on
the canonical one; the end-of-turn token that stopped a sample is not in its text and not
scored.

Batching (:func:`score_completions`): sequences sorted by length, padded (right by default,
left with position ids from the attention mask), one forward pass per batch under
``torch.inference_mode``, log-softmax in float32 over chunks of positions. A padded batch
scores every row as it scores alone (tested against a one-row-at-a-time loop).

Metrics: a token-weighted mean (``sum / tokens``) with a seeded percentile bootstrap 95%
interval (:func:`ratio_interval`): over SFT rows for ``nll``, over problems (each with all its
samples) for ``entropy``, since samples of one problem are not independent.

The stages import the submodule they need, so each one's DVC deps hold only its own code:
:mod:`.scoring` (the batched forward pass and the bootstrap), :mod:`.nll`
(:func:`~.nll.write_nll`), :mod:`.entropy` (:func:`~.entropy.write_entropy`).
"""

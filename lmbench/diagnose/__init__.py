"""Diagnostics that show *why* the models differ, on the runs the tables come from.

* ``gradients``: how the loss gradient ‖∂L_t/∂h_{t−k}‖ shrinks (or grows) as it travels back k steps
  through a recurrent network, at initialisation and after training (vanishing/exploding gradients).
* ``memory``: on the synthetic corpus, the loss a model pays above the exact oracle at the tokens
  that close a span, against the distance back to the opener: how far back it really remembers.
* ``cells``: hidden units whose activation tracks a known feature of the text (inside a span,
  inside quotes, position in line, ...), ranked by correlation and shown over the text.
* ``positions``: the loss at each position of windows scored from an empty context, for every family:
  how much each uses its context, and where it stops gaining from more (Kaplan et al. 2020).

``python -m lmbench.diagnose`` runs them on finished runs (see ``__main__``).
"""

"""``%%qfchat``: the cell (``cell``), its requests and sessions, the streaming runner, the answer display
(``answer``), the loading footer, saved prompts, the tool cell on :mod:`qfnb.agents` (``tools``) and
``%qfimage``'s Text2Image answer shown inline (``images``).
Imports ``render``, the notebook's shared modules, the SDK and ``qfnb.agents``; never training, evaluation or data."""

"""How a console call leaves: the one sender (sender: a builder's :class:`ConsoleRequest`, sent with
``asend``/``send``; the ``@surface`` mark the generator reads) and which console an account speaks with
the keys its calls need (account). The generated classes at the console's top and their builders send
through it; it imports none of them."""

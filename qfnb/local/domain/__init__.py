"""The platform's state and rules, in rooms by subject (layers: the Platform object -> console -> training ->
batch | records -> state). A room takes the platform as a narrow face (``state.site``), never the class.
May import ``qfnb.local.convert``, ``settings``, ``training``, ``engines`` and ``qfnb.protocol``; never ``server``."""

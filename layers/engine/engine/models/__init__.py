"""API models, named like the ``openai`` SDK's types: requests in ``request``, responses and items in
``response``, stream events in ``events``."""

"""The headless viewer (rerun): ``logger`` logs arrays, ``record`` turns bags into a recording through it,
``cli`` is `vfdepth view`; ``layout`` holds the entity layout and types they share."""

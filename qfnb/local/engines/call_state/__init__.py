"""What is known of the model calls as they run: how many reached a model, per model and kind (calls), and where
one is now, from received to done (progress). Leaf modules: they import no other module of the engines."""

"""Resources: each an interface with a local (embedded) class; AWS classes join them."""

"""Answer generators behind one interface, chosen by name (``QA_GENERATOR``)."""

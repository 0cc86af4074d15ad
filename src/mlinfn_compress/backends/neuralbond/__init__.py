"""``--target bondmachine``: the quantised network in the model JSON of BondMachine's ``neuralbond``."""

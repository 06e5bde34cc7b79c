"""What the client keeps of its calls: the response cache, the usage ledger, prices, the budget."""

"""`crossprefill serve`: the server (`server`), what it holds warm (`warm`), what it
shares with its compression proxy (`wire`), the proxy (`proxy`) and which texts of an
LLM API request it may compress (`chat_requests`)."""

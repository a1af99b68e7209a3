"""`crossprefill serve`: the server (`server`), what it holds warm (`warm`), what it
shares with its compression proxy (`wire`), the proxy's routes (`proxy`), its compressor
(`compressor`) and its relay to the upstream (`upstream`), which texts of an LLM API
request it may compress (`chat_requests`) and its expand tool (`expansion`)."""

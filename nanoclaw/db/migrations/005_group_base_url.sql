-- Per agent group model endpoint (the openai provider: Ollama, vLLM, OpenRouter, …).
ALTER TABLE agent_groups ADD COLUMN base_url TEXT;

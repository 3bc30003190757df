# Open WebUI settings for tests/webui/run.sh: Ollama backend only, offline,
# no background generations (titles, tags, follow-ups) that would compete
# with the chat under test for the 2 CPU cores.
export WEBUI_AUTH=False
export ENABLE_OLLAMA_API=true
export ENABLE_OPENAI_API=false
export OFFLINE_MODE=true
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export RAG_EMBEDDING_ENGINE=ollama
export RAG_EMBEDDING_MODEL=qwen
export RAG_RERANKING_MODEL=
export BYPASS_EMBEDDING_AND_RETRIEVAL=true
export VECTOR_DB=chroma
export AUDIO_STT_ENGINE=openai
export WHISPER_MODEL=
export AUDIO_TTS_ENGINE=
export ENABLE_WEB_SEARCH=false
export ENABLE_IMAGE_GENERATION=false
export ENABLE_CODE_INTERPRETER=false
export ENABLE_VERSION_UPDATE_CHECK=false
export ENABLE_COMMUNITY_SHARING=false
export ENABLE_TITLE_GENERATION=false
export ENABLE_FOLLOW_UP_GENERATION=false
export ENABLE_TAGS_GENERATION=false
export ENABLE_AUTOCOMPLETE_GENERATION=false
export WEBUI_SECRET_KEY=test-secret
export SCARF_NO_ANALYTICS=true DO_NOT_TRACK=true ANONYMIZED_TELEMETRY=false

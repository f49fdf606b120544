"""The web app and REST API (`dermalens serve`): FastAPI + uvicorn, ONNX Runtime only, no torch.

Entry points: `app.create_app(settings)` and `commands.register`. See docs/api.md.
"""

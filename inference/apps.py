from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"

    def ready(self) -> None:
        # Registers the model-free engine and the ``interactive`` queue's task in every process (web and workers).
        from inference.interactive import modelfree, serving  # noqa: F401

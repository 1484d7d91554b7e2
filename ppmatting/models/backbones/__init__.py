from ppmatting.models.backbones.vgg import VGG16, PaddleSegVGG16  # noqa: F401

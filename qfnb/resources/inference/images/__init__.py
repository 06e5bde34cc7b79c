"""The image calls: a prompt to images (text2image: :class:`Text2Image`) and a prompt about an image to text
(image2text: :class:`Image2Text`); both re-exported by :mod:`qfnb.resources.inference`."""

# The reference's image-generation mapper, with a CPU stand-in for Stable Diffusion: the
# stand-in "pipeline" draws each prompt as a picture with Pillow (Debian: python3-pil), so
# the sample runs anywhere. With a GPU, replace StandInPipeline by the reference's
# StableDiffusionPipeline.from_pretrained(...).to("cuda"); nothing else changes.
import skybatch as sky


@sky.batch.remote_function
def generate_images():
    import hashlib
    import os

    from PIL import Image, ImageDraw

    class StandInPipeline:
        """Same call shape as a diffusers pipeline: pipe(prompts).images is a list of PIL images."""

        def __init__(self, size):
            self.size = size

        def __call__(self, prompts):
            class Result:
                images = [self.draw(p) for p in prompts]

            return Result()

        def draw(self, prompt):
            h = hashlib.sha256(prompt.encode()).digest()
            img = Image.new("RGB", (self.size, self.size), (h[0], h[1], h[2]))
            d = ImageDraw.Draw(img)
            for i in range(6):
                x0, y0 = h[3 + i] % self.size, h[9 + i] % self.size
                d.ellipse([x0, y0, x0 + self.size // 3, y0 + self.size // 3], fill=(h[15 + i], h[21 + i], h[27 % 32]))
            d.text((4, self.size - 14), prompt[:20], fill=(255, 255, 255))
            return img

    # One-time setup per worker per job: with a GPU, loading the model onto it.
    pipe = StandInPipeline(int(os.environ.get("IMAGE_SIZE", "128")))

    for batch in sky.batch.load():
        prompts = [item["prompt"] for item in batch]
        result = pipe(prompts)

        results = []
        for item, img in zip(batch, result.images):
            results.append({"prompt": item["prompt"], "image": img})

        sky.batch.save_results(results)

"""The devices' data: sine regression tasks from a shifted family, or Omniglot characters of
alphabets the starting model never saw.

Sine: every device holds one task, y = a sin(x + p), drawn from its device number; each round it
collects fresh samples of it. Omniglot: every device holds a few characters of one of the 20
evaluation alphabets (all their drawings); each round it adapts on a few-shot task of them.
Held-out devices (numbers from ``HELD_OUT``) never take part in training and measure how well an
initialization adapts.

A family gives what the client and the server need: ``training_set(blob, device, round)``, the
round's samples of a training device; ``learner(blob)``, the device's learner;
``check(blob, eval_shots)``, whether a model and the data fit the family (ValueError if not);
and ``evaluate(blob, devices, shots, steps)``, the held-out record fields of a round.
"""

import functools
import io
import math
import os
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Device numbers from here on are held out of training.
HELD_OUT = 1_000_000


@dataclass(frozen=True)
class SineFamily:
    """Tasks y = a sin(x + p), a in ``amplitude``, p in ``phase``, x in ``inputs``; a training
    device collects ``per_device`` fresh samples each round."""

    amplitude: tuple = (5.0, 10.0)
    phase: tuple = (0.0, float(np.pi))
    inputs: tuple = (-5.0, 5.0)
    per_device: int = 50

    def task(self, device: int):
        """Device ``device``'s (amplitude, phase)."""
        rng = np.random.default_rng([device, 0x51E])
        return rng.uniform(*self.amplitude), rng.uniform(*self.phase)

    def samples(self, device: int, n: int, seed: int):
        """``n`` random samples of the device's task: float32 ``(n, 1)`` inputs and targets."""
        a, p = self.task(device)
        rng = np.random.default_rng([device, seed, 0xDA7A])
        x = rng.uniform(*self.inputs, size=(n, 1)).astype(np.float32)
        return x, (a * np.sin(x + p)).astype(np.float32)

    def grid(self, device: int, n: int = 50):
        """The task on ``n`` evenly spaced inputs (the query set of an evaluation)."""
        a, p = self.task(device)
        x = np.linspace(*self.inputs, n, dtype=np.float32)[:, None]
        return x, (a * np.sin(x + p)).astype(np.float32)

    def training_set(self, blob, device: int, round_: int):
        """A training device's samples of round ``round_``."""
        return self.samples(device, self.per_device, seed=round_)

    def learner(self, blob):
        import anole

        return anole.Learner(blob)

    def check(self, blob, eval_shots: int = 0):
        """ValueError unless ``blob`` maps one input to one output."""
        if tuple(blob.input_shape) != (1,) or blob.target_len != 1:
            raise ValueError("the sine task needs a model of one input and one output "
                             f"(this one: input {blob.input_shape}, {blob.target_len} targets)")

    def classify(self, learner, x) -> np.ndarray:
        """The classes of ``x``: the argmax over classes of the mean of each class's tied
        outputs (the tied rows agree up to the order of the sums in their gradients)."""
        logits = learner.predict(x)
        return logits.reshape(len(x), -1, self.ways).mean(axis=1).argmax(axis=1)

    def evaluate(self, blob, devices: int, shots: int, steps: int) -> dict:
        return {"held_out_mse": held_out_mse(blob, self, devices, shots or 10, steps or 8)}


def held_out_mse(blob, family: SineFamily, devices: int, shots: int, steps: int) -> float:
    """Mean query MSE of ``devices`` held-out devices after adapting ``blob`` for ``steps``
    SGD steps (the blob's learning rate) on ``shots`` samples each."""
    import anole

    losses = []
    for d in range(HELD_OUT, HELD_OUT + devices):
        x, y = family.samples(d, shots, seed=0)
        qx, qy = family.grid(d)
        learner = anole.Learner(blob)
        try:
            learner.adapt(x, y, steps=steps)
        except anole.DivergedError:
            pass  # the learner keeps its last good step: its loss is what the device sees
        losses.append(learner.loss(qx, qy))
    return float(np.mean(losses))


#: The half of the Omniglot release whose 20 alphabets a `--split lake` model never saw.
EVALUATION = "images_evaluation"
#: Side of the network input; Omniglot's drawings are 105 px and larger images are refused.
SIDE, NATIVE = 28, 105


def _positions(n: int) -> np.ndarray:
    """The source pixels of a nearest-neighbour resize from ``n`` to 28 pixels: PIL's sampling
    positions floor((x + 0.5) n / 28), the trainer's preprocessing (trainer/src/data/images.rs)."""
    return ((np.arange(SIDE) + 0.5) * n / SIDE).astype(np.int64)


def _drawing(raw: bytes, name: str) -> np.ndarray:
    """One PNG as the network sees it: 28x28 float32 grey levels, white paper 1, ink 0."""
    try:
        from PIL import Image
    except ImportError as e:
        raise RuntimeError("the Omniglot task reads PNGs with Pillow: pip install pillow") from e
    try:
        img = Image.open(io.BytesIO(raw))
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except Exception as e:  # PIL raises many kinds on a bad file
        raise ValueError(f"{name}: not a readable image ({e})") from e
    h, w = grey.shape
    if h > NATIVE or w > NATIVE:
        raise ValueError(f"{name}: {w}x{h} pixels, larger than Omniglot's {NATIVE}")
    return grey[np.ix_(_positions(h), _positions(w))]


@functools.lru_cache(maxsize=4)
def load_alphabets(folder: str) -> dict:
    """The evaluation alphabets of the Omniglot release in ``folder`` (``images_evaluation.zip``,
    or the unzipped ``images_evaluation/`` folder, preferred when both exist): alphabet ->
    [(character, float32 drawings (n, 28, 28))], alphabets, characters and drawings sorted by
    name. Read once per process."""
    root = Path(folder)
    unzipped, archive = root / EVALUATION, root / f"{EVALUATION}.zip"
    files = {}  # (alphabet, character) -> [(drawing name, bytes)]
    if unzipped.is_dir():
        source = unzipped
        for png in sorted(unzipped.glob("*/*/*.png")):
            key = (png.parent.parent.name, png.parent.name)
            files.setdefault(key, []).append((str(png), png.read_bytes()))
    elif archive.is_file():
        source = archive
        try:
            with zipfile.ZipFile(archive) as z:
                for name in sorted(z.namelist()):
                    parts = name.split("/")
                    if len(parts) == 4 and parts[0] == EVALUATION and parts[3].endswith(".png"):
                        files.setdefault((parts[1], parts[2]), []).append(
                            (f"{archive}:{name}", z.read(name)))
        except zipfile.BadZipFile as e:
            raise ValueError(f"{archive}: not a zip archive ({e})") from e
    else:
        raise FileNotFoundError(
            f"Omniglot data: {root} holds neither {EVALUATION}.zip nor {EVALUATION}/ (the "
            "Omniglot release's 20 evaluation alphabets); set omniglot-data to its folder")
    if not files:
        raise ValueError(f"{source}: no drawings (expected <alphabet>/<character>/<drawing>.png)")
    alphabets = {}
    for (alphabet, character), drawings in sorted(files.items()):
        images = np.stack([_drawing(raw, name) for name, raw in drawings])
        alphabets.setdefault(alphabet, []).append((character, images))
    return alphabets


@functools.lru_cache(maxsize=4)
def split_characters(folder: str) -> dict:
    """alphabet -> (training characters, held-out characters): every third character of each
    alphabet (its 1st, 4th, 7th, ... by name) is held out, the rest are training devices'."""
    return {a: ([c for i, c in enumerate(chars) if i % 3],
                [c for i, c in enumerate(chars) if i % 3 == 0])
            for a, chars in load_alphabets(folder).items()}


def _varint(b: bytes, i: int):
    """A postcard varint at ``b[i]``: (value, next index)."""
    value = shift = 0
    while True:
        byte = b[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def narrow_head(blob, ways: int):
    """``blob`` with its last layer, a dense classifier head, cut to its first ``ways``
    outputs: the same body, settings and adaptation procedure for ``ways``-way tasks. Under
    the prototype head start (the blob's ``head_start``) the head is replaced by the support's
    class prototypes before the first step, so its rows carry nothing and the cut loses
    nothing. The blob is rewritten field by field as docs/format.md describes it."""
    import anole

    body = blob.to_bytes()[:-4]  # the payload; its CRC-32 is written anew below
    i = 4  # magic
    _, i = _varint(body, i)  # version
    n, i = _varint(body, i)  # input shape
    for _ in range(n):
        _, i = _varint(body, i)
    out = bytearray(body[:i])
    count, i = _varint(body, i)
    layers = []
    for _ in range(count):
        kind = body[i]
        n, i = _varint(body, i + 1)
        args = []
        for _ in range(n):
            a, i = _varint(body, i)
            args.append(a)
        layers.append((kind, args))
    count, i = _varint(body, i)
    tensors = []
    for _ in range(count):
        n, j = _varint(body, i + 1)
        tensors.append((body[i], body[j:j + n]))
        i = j + n
    kind, args = layers[-1]
    if kind != 0 or args[1] < ways or blob.settings["head_start"] != "prototypes":
        raise ValueError("only a dense classifier head started from prototypes can be cut to "
                         f"{ways} classes")
    inputs = args[0]
    layers[-1] = (kind, [inputs, ways])
    (wt, w), (bt, b) = tensors[-2:]
    size = {0: 4, 1: 2, 2: 2}  # bytes per element of f32, f16, bf16
    tensors[-2:] = [(wt, w[:ways * inputs * size[wt]]), (bt, b[:ways * size[bt]])]
    out += _varint_bytes(len(layers))
    for kind, args in layers:
        out += bytes([kind]) + _varint_bytes(len(args)) + b"".join(map(_varint_bytes, args))
    out += _varint_bytes(len(tensors))
    for dtype, data in tensors:
        out += bytes([dtype]) + _varint_bytes(len(data)) + data
    out += body[i:]  # settings and provenance as they were
    return anole.Blob.from_bytes(bytes(out) + zlib.crc32(out).to_bytes(4, "little"))


@dataclass(frozen=True)
class OmniglotFamily:
    """Devices holding characters of Omniglot's evaluation alphabets.

    Training device ``d`` (below ``HELD_OUT``) holds ``characters`` of the training characters
    of alphabets ``d mod 20`` and ``d + 1 mod 20`` (all their drawings), drawn by its number.
    Each round it adapts the blob as it is, with its own procedure, on a task of as many classes
    as the blob's head has outputs (20 for ``models/omniglot-lake``): that many of its
    characters and ``shots`` drawings of each, drawn by device and round.

    Held-out device ``HELD_OUT + i`` holds up to ``characters`` of the held-out characters of
    alphabet ``i mod 20``, which no training device has. Its evaluation is one ``ways``-way
    episode: ``ways`` of its characters, the evaluation's shots of each as the support and every
    other drawing of them as queries, adapted from the blob with its head cut to ``ways``
    outputs (`narrow_head`).
    """

    data: str
    ways: int = 5
    shots: int = 10
    characters: int = 20

    def _folder(self) -> str:
        return str(Path(self.data).resolve())

    def holding(self, device: int) -> list:
        """The characters device ``device`` holds: [(alphabet/character, drawings)]."""
        split = split_characters(self._folder())
        names = sorted(split)
        if device >= HELD_OUT:
            alphabet = names[(device - HELD_OUT) % len(names)]
            pool = [(f"{alphabet}/{c}", x) for c, x in split[alphabet][1]]
        else:
            pool = [(f"{a}/{c}", x) for a in (names[device % len(names)],
                                              names[(device + 1) % len(names)])
                    for c, x in split[a][0]]
        k = min(self.characters, len(pool))
        rng = np.random.default_rng([device, 0xC4A2])
        return [pool[j] for j in sorted(rng.choice(len(pool), size=k, replace=False))]

    def training_set(self, blob, device: int, round_: int):
        """A training device's task of round ``round_``: as many of its characters as the
        blob's head has outputs, ``shots`` drawings of each, rows in random order."""
        chars = self.holding(device)
        classes = blob.output_shape[0]
        rng = np.random.default_rng([device, round_, 0xDA7A])
        pick = rng.choice(len(chars), size=classes, replace=False)
        x = np.concatenate([chars[c][1][rng.choice(len(chars[c][1]), size=self.shots,
                                                   replace=False)] for c in pick])
        y = np.repeat(np.arange(classes, dtype=np.float32), self.shots)
        order = rng.permutation(len(y))
        return np.ascontiguousarray(x[order, None], dtype=np.float32), y[order]

    def learner(self, blob):
        import anole

        return anole.Learner(blob)

    def check(self, blob, eval_shots: int = 1):
        """ValueError unless ``blob`` is an Omniglot classifier whose head has at least ``ways``
        outputs and starts from prototypes, and the data gives every device enough characters
        with enough drawings."""
        outputs = blob.output_shape[0] if len(blob.output_shape) == 1 else 0
        if (tuple(blob.input_shape) != (1, SIDE, SIDE) or blob.settings["loss"] != "xent"
                or outputs < self.ways or blob.settings["head_start"] != "prototypes"):
            raise ValueError(
                f"the Omniglot task needs a classifier of 1x28x28 images with at least ways = "
                f"{self.ways} outputs whose head starts from prototypes (this model: input "
                f"{blob.input_shape}, output {blob.output_shape}, loss {blob.settings['loss']},"
                f" head start {blob.settings['head_start']})")
        split = split_characters(self._folder())
        names = sorted(split)
        for n, alphabet in enumerate(names):
            training, held = split[alphabet]
            both = len(training) + len(split[names[(n + 1) % len(names)]][0])
            if min(both, self.characters) < outputs:
                raise ValueError(
                    f"training devices of {alphabet} hold {min(both, self.characters)} "
                    f"characters, fewer than the model's {outputs} classes (omniglot-characters"
                    f" {self.characters})")
            if len(held) < self.ways:
                raise ValueError(f"{alphabet} has {len(held)} held-out characters, fewer than "
                                 f"ways = {self.ways}")
            for name, drawings in training + held:
                need = max(self.shots, eval_shots + 1)
                if len(drawings) < need:
                    raise ValueError(f"{alphabet}/{name} has {len(drawings)} drawings, fewer "
                                     f"than the {need} a task needs")

    def episode(self, device: int, shots: int):
        """A held-out device's evaluation episode: support rows and labels, then query rows and
        their labels."""
        chars = self.holding(device)
        rng = np.random.default_rng([device, 0xE7A1])
        pick = rng.choice(len(chars), size=self.ways, replace=False)
        support, queries, classes = [], [], []
        for label, c in enumerate(pick):
            drawings = chars[c][1]
            order = rng.permutation(len(drawings))
            support.append(drawings[order[:shots]])
            queries.append(drawings[order[shots:]])
            classes += [label] * (len(drawings) - shots)
        x = np.ascontiguousarray(np.concatenate(support)[:, None], dtype=np.float32)
        y = np.repeat(np.arange(self.ways, dtype=np.float32), shots)
        qx = np.ascontiguousarray(np.concatenate(queries)[:, None], dtype=np.float32)
        return x, y, qx, np.array(classes)

    def evaluate(self, blob, devices: int, shots: int, steps: int) -> dict:
        """Each of ``devices`` held-out devices adapts ``blob``, its head cut to ``ways``
        outputs, with its procedure (``steps`` steps: the blob's when 0) on one ``ways``-way
        ``shots``-shot episode (1 when 0) and classifies the other drawings of the episode's
        characters. The mean accuracy, its 95% interval over the episodes, and every
        episode's accuracy (the same episodes every round)."""
        import anole

        shots = shots or 1
        steps = steps or int(blob.settings["steps"])
        narrow = narrow_head(blob, self.ways)

        def one(device):
            x, y, qx, qy = self.episode(device, shots)
            learner = anole.Learner(narrow)
            try:
                learner.adapt(x, y, steps=steps)
            except anole.DivergedError:
                pass  # the learner keeps its last good step: its accuracy is what the device sees
            return float(np.mean(learner.classify(qx) == qy))

        # Learners release the GIL: held-out devices adapt in parallel, results in device order.
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            acc = list(pool.map(one, range(HELD_OUT, HELD_OUT + devices)))
        ci95 = 1.96 * float(np.std(acc, ddof=1)) / math.sqrt(len(acc)) if len(acc) > 1 else 0.0
        return {"held_out_accuracy": float(np.mean(acc)), "held_out_ci95": ci95,
                "held_out_episodes": acc}

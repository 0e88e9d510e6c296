"""English speech with known transcripts from eSpeak NG, driven through `ctypes` (tiny data).

The PyPI wheel `espeakng-loader` carries `libespeak-ng.so` and its voice data, so synthesis needs
no system package. The calls are those of eSpeak NG's C API (`speak_lib.h`): `espeak_Initialize`
in synchronous mode, a synthesis callback that collects the 16-bit samples, `espeak_SetVoiceByName`
("en-us+f3": a language and a voice variant), `espeak_SetParameter` (rate in words per minute,
pitch 0-100), `espeak_Synth` and `espeak_Synchronize`. Output is mono 16-bit PCM at the rate
`espeak_Initialize` returns (22,050 Hz).

The library keeps global state, so one `Synthesizer` per process, and calls are serialized. That state
carries over from one synthesis to the next (the same text twice gives slightly different audio), so
the same sequence of calls reproduces its audio only from a freshly loaded library: dataset.make_tiny
synthesizes in a new process. Voice variants with breath noise (en-us+f2, en+f3, en-us+f5, ...) also draw
from eSpeak NG's own random generator, which `espeak_Initialize` seeds from the clock: `seed()` sets it
(`espeak_ng_SetRandSeed`), or those voices differ from one process to the next.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np

from harness.errors import DatasetError

# speak_lib.h enums
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_ENDPAUSE = 0x1000
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Synthesizer:
    """`synthesize(text, voice, rate, pitch) -> int16 samples at `sample_rate` Hz."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise DatasetError("tiny speech data needs the PyPI wheel espeakng-loader: "
                               "pip install -e '.[speech_recognition]'") from None
        self._lock = threading.Lock()
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise DatasetError(f"{espeakng_loader.get_library_path()}: espeak_Initialize failed "
                               f"(voice data {data_path.decode()})")
        self._chunks: list[np.ndarray] = []

        def collect(samples, count, _events) -> int:
            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0  # 0: continue synthesis

        self._callback = _CALLBACK(collect)  # kept referenced: the library holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]

    def seed(self, value: int) -> None:
        """Seed eSpeak NG's random generator (breath noise); without it the clock seeds it."""
        with self._lock:
            self._lib.espeak_ng_SetRandSeed(int(value))

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> np.ndarray:
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise DatasetError(f"espeak-ng: no voice '{voice}' in the espeakng-loader voice data")
            self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            self._chunks = []
            encoded = text.encode("utf-8") + b"\0"
            status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0,
                                            _ESPEAK_CHARS_UTF8 | _ESPEAK_ENDPAUSE, None, None)
            self._lib.espeak_Synchronize()
            if status != _EE_OK:
                raise DatasetError(f"espeak-ng: synthesis of {text!r} failed (status {status})")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = []
        return audio.astype(np.int16)


@functools.lru_cache(maxsize=1)
def synthesizer() -> Synthesizer:
    """The process's one synthesizer (eSpeak NG keeps global state)."""
    return Synthesizer()

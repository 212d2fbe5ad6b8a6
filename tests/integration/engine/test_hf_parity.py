"""The engine against HF transformers (LlamaForCausalLM from the same GGUF, fp32)."""

import pytest
import torch

from logitsmatch.engine.loader import smollm2_gguf_path
from logitsmatch.engine.request import SamplingParams

transformers = pytest.importorskip("transformers")

PARAGRAPH = (
    "Time travel to 2008, and go to a bar or a club or one of the myriad disco-basements on the "
    "Lower East Side that does not quite know which of those it is. Dance awkwardly in a room "
    "full of other glittered-up nerds, and wait for something to happen. "
)
PROMPTS = {
    "one_token": "Hello",
    "code": "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "chat": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "long": PARAGRAPH * 6,
}


@pytest.fixture(scope="module")
def hf():
    path = smollm2_gguf_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.LlamaForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()
    return tokenizer, model


@pytest.mark.parametrize("name", list(PROMPTS))
def test_greedy_tokens_and_logprobs_match_hf(name, hf, fast_model, make_engine):
    _, model = hf
    engine = make_engine(fast_model)
    params = SamplingParams(num_tokens_to_generate=30, return_log_probs=True, termination_id=-1)
    record = engine.generate([PROMPTS[name]], params)[0]
    prompt = engine.tokenizer.encode(PROMPTS[name])
    if name == "long":
        assert len(prompt) > 300
    ids = prompt + record.generated_tokens
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    # HF's greedy choice at every generated position, fed our (identical) prefix.
    hf_greedy = logits[len(prompt) - 1 : -1].argmax(-1).tolist()
    assert hf_greedy == record.generated_tokens
    reference = logprobs[:-1].gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
    ours = torch.tensor(record.logprobs)
    assert ours.shape == reference.shape == (len(ids) - 1,)
    assert (ours - reference).abs().max().item() <= 2e-4


@pytest.mark.parametrize(
    "text",
    [
        "Hello world, this is plain ASCII.",
        "naïve café — 日本語のテキスト 🙂 ∑x²",
        "a    b\n\n\n\tc   \t  d  ",
        "<|im_start|>user\nhi<|im_end|><|endoftext|>",
        "2024-11-26: 12345 + 3.14159 = ?",
    ],
)
def test_token_ids_equal_hf(text, hf, smollm2):
    tokenizer, _ = hf
    ours = smollm2.tokenizer()
    assert ours.encode(text) == tokenizer.encode(text, add_special_tokens=False)
    assert ours.decode(ours.encode(text)) == text

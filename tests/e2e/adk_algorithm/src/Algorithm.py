# An algorithm written the way Algorithmia's ADK template writes one, unmodified: it imports the
# official packages from PyPI and knows nothing about Insights-the-project.
import Algorithmia
from Algorithmia import ADK

client = Algorithmia.client()


def load():
    return {"threshold": 0.5, "scale": 50000}


def apply(input, model):
    if isinstance(input, bytes):
        return bytes(reversed(input))
    if isinstance(input, str):
        print("got text: " + input)
        return input.upper()
    if input.get("fail"):
        raise ValueError("applicant record is incomplete")
    risk = min(1.0, max(0.0, input["debt"] / model["scale"]))
    approved = risk < model["threshold"]
    client.report_insights({"risk_score": risk, "approved": approved})
    print("scored risk=%s" % risk)
    return {"risk_score": risk, "approved": approved}


algorithm = ADK(apply, load)
algorithm.init("Algorithmia")

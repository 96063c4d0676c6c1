"""The shipped encoder table stays in step with the models."""

import pytest

from eegdecode.models import list_encoders
from eegdecode.models.summary import DESCRIPTIONS, encoder_summary, read_summary_csv, summary_markdown

pytestmark = pytest.mark.filterwarnings("ignore:This model has only been tested:UserWarning")


def test_summary_csv_matches_the_models():
    computed = encoder_summary()
    shipped = read_summary_csv()
    assert [row["model"] for row in shipped] == list_encoders()
    assert [{k: str(v) for k, v in row.items()} for row in computed] == shipped


def test_every_encoder_is_described():
    assert list(DESCRIPTIONS) == list_encoders()


def test_markdown_table_has_one_row_per_encoder_with_thousands_separators():
    table = summary_markdown(
        [
            {
                "model": "X",
                "parameters_63x250": 1234567,
                "parameters_17x250": 4321,
                "description": "d",
                "source": "s",
            }
        ]
    )
    assert table.splitlines()[-1] == "| X | 1,234,567 | 4,321 | d | s |"

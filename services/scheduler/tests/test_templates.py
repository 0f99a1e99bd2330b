"""Templates: unknown variables are caught up front; rendering falls back gracefully."""

from __future__ import annotations

import pytest
from herald_scheduler.templates import TemplateError, UserContext, check_template, render


def test_check_template_finds_variables_everywhere() -> None:
    used = check_template(
        {
            "title": "Hi {first_name}",
            "body": "{product_name} in {favorite_category}, {{literal}}",
            "data": {"cta": ["Shop {favourite_category}"], "n": 3},
        }
    )
    assert used == {"first_name", "product_name", "favorite_category", "favourite_category"}


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"title": "{nope}", "body": "b"}, "template.title"),
        ({"title": "t", "body": "{name.upper}"}, "template.body"),
        ({"title": "t", "body": "{name!r}"}, "template.body"),
        ({"title": "t", "body": "{name:>9}"}, "template.body"),
        ({"title": "t", "body": "{"}, "template.body"),
        ({"title": "t", "body": "b", "data": {"x": [1, "{who}"]}}, "template.data.x[1]"),
    ],
)
def test_bad_placeholders_name_their_field(template: dict, field: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(template)
    assert caught.value.field == field


def test_render_per_user_with_fallbacks() -> None:
    template = {
        "title": "{first_name}, news in {favorite_category}",
        "body": "Hi {name}: {product_name}",
        "data": {"cta": "Shop {favorite_category}", "discount": 20},
    }
    full = render(
        template, UserContext(name="Ada Lovelace", favorite_category="books", product_name="Notes")
    )
    assert full == {
        "title": "Ada, news in books",
        "body": "Hi Ada Lovelace: Notes",
        "data": {"cta": "Shop books", "discount": 20},
    }
    bare = render(template, UserContext())
    assert bare["title"] == "there, news in our catalog"
    assert bare["body"] == "Hi there: our latest picks"

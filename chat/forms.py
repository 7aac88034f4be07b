"""Forms of the chat pages."""
from django import forms
from django.core.exceptions import ValidationError

from chat import services


class RoomOpenForm(forms.Form):
    name = forms.CharField(label="Room name", max_length=50)
    private = forms.BooleanField(label="Private (members only)", required=False)

    def clean(self):
        """Add the `slug` that the typed name opens."""
        cleaned = super().clean()
        if "name" in cleaned:
            try:
                cleaned["slug"] = services.room_slug_from_name(cleaned["name"])
            except ValidationError as error:
                self.add_error("name", error.messages)
        return cleaned


class MemberForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    action = forms.ChoiceField(choices=[("add", "Add"), ("remove", "Remove")])

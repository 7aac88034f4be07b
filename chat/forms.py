"""Forms of the chat pages."""
from django import forms
from django.core.exceptions import ValidationError

from chat import services


class RoomOpenForm(forms.Form):
    name = forms.CharField(label="Room name", max_length=50)

    def clean_name(self):
        """Turn the typed name into a valid room slug."""
        try:
            return services.room_slug_from_name(self.cleaned_data["name"])
        except ValidationError as error:
            raise ValidationError(error.messages) from None

"""Reading the channels a debtor authorised from an import's custom attribute, and what an import
may change."""

from recupero_orchestrator.domain.authorisations import (
    AuthorisationSource,
    import_changes,
    imported_channels,
)
from recupero_orchestrator.domain.channels import ContactChannel as C


def test_the_attribute_is_found_by_either_name_whatever_the_header_spelling() -> None:
    found = imported_channels({"Canales Autorizados": "WhatsApp, SMS | e mail ; letter agent_call"})
    assert found is not None
    assert found.attribute == "Canales Autorizados"
    assert found.channels == {C.WHATSAPP, C.SMS, C.LETTER, C.AGENT_CALL}
    assert found.unknown == ("e", "mail")
    assert imported_channels({"AUTHORISED-CHANNELS": ""}) is not None
    assert imported_channels({"CANAL_PREFERIDO": "sms"}) is None


def test_channels_that_reach_nobody_are_not_authorisations() -> None:
    found = imported_channels({"authorised_channels": "legal_referral;email"})
    assert found is not None
    assert (found.channels, found.unknown) == ({C.EMAIL}, ("legal_referral",))


def test_an_import_replaces_its_own_grants_but_not_the_debtors_word() -> None:
    changes = import_changes(
        frozenset({C.WHATSAPP, C.SMS}),
        {C.EMAIL: AuthorisationSource.IMPORT, C.IVR: AuthorisationSource.API},
        revoked_by_debtor=[C.WHATSAPP],
    )
    assert changes.grant == {C.SMS}
    assert changes.revoke == {C.EMAIL}
    assert changes.kept_revoked == {C.WHATSAPP}

package api

import (
	"net/http"
	"time"

	"github.com/mfad/mfad/api/wire"
)

// Handlers of the SMS path: the SMS step of a login, phone enrolment, and
// the operator's test message.

func (s *Server) loginSMS(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needLogin(id); err != nil {
		return err
	}
	var req wire.SMSRequest
	if err := decode(r, &req, true); err != nil {
		return err
	}
	sent, err := s.opts.Service.SendLoginSMS(r.Context(), caller(id), r.PathValue("id"), req.PhoneID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.SMSSentResponse{SentTo: sent.Masked, ExpiresIn: int(sent.Expires.Sub(s.now()) / time.Second)})
	return nil
}

func (s *Server) enrollPhone(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.PhoneEnrollRequest](r, id, false)
	if err != nil {
		return err
	}
	e, err := s.opts.Service.EnrollPhone(r.Context(), caller(id), u, req.Number, req.Label)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wire.SMSSentResponse{FactorID: e.FactorID, SentTo: e.Masked, ExpiresIn: int(e.Expires.Sub(s.now()) / time.Second)})
	return nil
}

func (s *Server) confirmPhone(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.CodeRequest](r, id, false)
	if err != nil {
		return err
	}
	rc, err := s.opts.Service.ConfirmPhone(r.Context(), caller(id), u, r.PathValue("id"), req.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.ConfirmResponse{Result: "ok", RecoveryCodes: revealCodes(rc)})
	return nil
}

func (s *Server) smsTest(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	var req wire.SMSTestRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	rep, err := s.opts.Service.SendTestSMS(r.Context(), caller(id), req.Number, req.Text)
	if rep == nil {
		return err
	}
	out := wire.SMSTestResponse{Outcome: string(rep.Outcome), Modem: rep.Modem, Parts: rep.Parts, Attempts: rep.Attempts}
	if err != nil {
		out.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

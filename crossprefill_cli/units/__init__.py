"""What is kept: the input's parts (`layout`) cut into units (`cutting`), draft-token
chunks and their scores (`chunks`), the evidence scorer's fusion of attention and the
question's words (`evidence`) and the choice under the budget (`selection`). Pure
functions over numpy arrays, tested directly; they read `text`, never a model."""
